-- Credentials: the secrets an account logs in with (SMTP AUTH now; IMAP, POP3 and API keys
-- later). An account may have several, each with a label; rotation adds a new one and gives the
-- old one an expiry (the grace period). Secrets are argon2id PHC strings.
CREATE TABLE credentials (
    id            INTEGER PRIMARY KEY,
    account       TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'password',
    secret_hash   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,                  -- unix ms; NULL: never
    revoked_at    INTEGER,                  -- unix ms; NULL: not revoked
    last_used_at  INTEGER,
    last_used_ip  TEXT
);
CREATE INDEX credentials_account ON credentials(account);

-- Every existing account's password becomes its credential "default".
INSERT INTO credentials (account, label, secret_hash, created_at)
    SELECT address, 'default', password_hash, created_at FROM accounts;
