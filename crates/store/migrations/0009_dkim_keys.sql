-- DKIM signing keys per domain and selector (RFC 6376). The private key is DER (PKCS#1 for
-- RSA, PKCS#8 for Ed25519); the database file is only readable by the server's user.
CREATE TABLE dkim_keys (
    domain       TEXT NOT NULL,             -- lower-case
    selector     TEXT NOT NULL,
    algorithm    TEXT NOT NULL,             -- 'rsa' | 'ed25519'
    private_key  BLOB NOT NULL,
    public_key   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (domain, selector)
);
