-- Postrider store schema, version 2: queue administration.

-- When an administrator put the entry on hold (unix ms); NULL when it is not held. A held entry
-- is neither delivered nor bounced until it is released.
ALTER TABLE queue ADD COLUMN held_at INTEGER;

-- The delivery lane the entry belongs to (e.g. transactional, bulk). Every entry is in
-- 'transactional' until lanes are scheduled separately.
ALTER TABLE queue ADD COLUMN lane TEXT NOT NULL DEFAULT 'transactional';
