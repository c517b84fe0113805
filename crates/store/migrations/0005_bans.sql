-- Temporary bans after repeated authentication failures: of a client address (kind 'ip'), or
-- of logins to one account name (kind 'account'). Kept in the database so the admin CLI can
-- list and lift them while the server runs.
CREATE TABLE bans (
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    until       INTEGER NOT NULL,           -- unix ms
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
