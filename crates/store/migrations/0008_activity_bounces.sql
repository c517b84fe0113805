-- Recipients a remote server refused permanently, per credential and hour: a leaked credential
-- sending to bought or guessed lists bounces far more than its owner does.
ALTER TABLE credential_activity ADD COLUMN bounces INTEGER NOT NULL DEFAULT 0;
