-- Distinct recipient domains per credential and hour (the most seen so far in that hour), for
-- the unusual-activity baseline: a leaked credential sprays many domains at once.
ALTER TABLE credential_activity ADD COLUMN domains INTEGER NOT NULL DEFAULT 0;
