-- Whether the sender has been told a recipient is delayed (RFC 3464 Action: delayed), so the
-- delay report goes out once.
ALTER TABLE queue_recipients ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
