-- Postrider store schema, version 1.

CREATE TABLE domains (
    name        TEXT PRIMARY KEY,           -- lower-case
    catch_all   TEXT,                       -- address that gets mail for unknown local parts
    created_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    address       TEXT PRIMARY KEY,         -- lower-case local@domain
    domain        TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,            -- argon2id PHC string
    created_at    INTEGER NOT NULL
);

CREATE TABLE aliases (
    alias   TEXT NOT NULL,                  -- lower-case local@domain
    target  TEXT NOT NULL,
    PRIMARY KEY (alias, target)
);

-- Message content, written once and referenced by the queue and by mailboxes; named by the
-- queue id the message arrived with, and removed when neither a queue entry nor a mailbox
-- message refers to it any more.
-- `prefix` holds the header lines intake added; the original message is in `data` (small
-- messages) or in the file `path` relative to the data directory (large ones).
CREATE TABLE bodies (
    id      TEXT PRIMARY KEY,
    prefix  BLOB NOT NULL,
    data    BLOB,
    path    TEXT,
    size    INTEGER NOT NULL                -- prefix + original, in octets
);

CREATE TABLE queue (
    id           TEXT PRIMARY KEY,
    body_id      TEXT NOT NULL,
    envelope     TEXT NOT NULL,             -- JSON: see store::Envelope
    created_at   INTEGER NOT NULL,          -- unix ms
    quarantined  TEXT                       -- reason, when recovery found the entry unusable
);

CREATE TABLE queue_recipients (
    queue_id      TEXT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    address       TEXT NOT NULL,            -- as given in RCPT TO
    dsn           TEXT NOT NULL,            -- JSON: NOTIFY and ORCPT
    destination   TEXT NOT NULL,            -- JSON: store::Destination
    state         TEXT NOT NULL,            -- queued | deferred | delivered | failed
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL,         -- unix ms
    last_error    TEXT,
    PRIMARY KEY (queue_id, idx)
);
CREATE INDEX queue_recipients_due ON queue_recipients(state, next_attempt);

CREATE TABLE mailboxes (
    id           INTEGER PRIMARY KEY,
    owner        TEXT NOT NULL,             -- lower-case address
    name         TEXT NOT NULL,             -- folder name, INBOX first
    uidvalidity  INTEGER NOT NULL,
    uidnext      INTEGER NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE mailbox_messages (
    id           INTEGER PRIMARY KEY,
    mailbox_id   INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid          INTEGER NOT NULL,
    body_id      TEXT NOT NULL,
    prefix       BLOB NOT NULL,             -- Return-Path and Delivered-To, added at delivery
    size         INTEGER NOT NULL,          -- the whole message as stored
    received_at  INTEGER NOT NULL,          -- unix ms
    queue_id     TEXT,
    flags        TEXT NOT NULL DEFAULT '',
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX mailbox_messages_body ON mailbox_messages(body_id);
