-- Unusual-activity detection per credential: messages per hour (the baseline), the networks it
-- has logged in from, and a suspension set when a burst is caught with action "hold".
CREATE TABLE credential_activity (
    credential_id  INTEGER NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    hour           INTEGER NOT NULL,        -- unix ms / 3 600 000
    messages       INTEGER NOT NULL,
    PRIMARY KEY (credential_id, hour)
);
CREATE TABLE credential_networks (
    credential_id  INTEGER NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    network        TEXT NOT NULL,           -- e.g. "192.0.2.0/24"
    first_seen     INTEGER NOT NULL,
    PRIMARY KEY (credential_id, network)
);
ALTER TABLE credentials ADD COLUMN suspended_at INTEGER;
ALTER TABLE credentials ADD COLUMN suspended_reason TEXT;
