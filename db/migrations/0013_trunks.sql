-- Calls arrive on carrier trunks and leave on them (issue: the real telephone network).

-- The carrier trunk a call came in on (NULL: an agent's phone or a test call).
ALTER TABLE calls ADD COLUMN IF NOT EXISTS trunk text;

-- Why a call back did not reach the citizen (callback_busy, callback_refused, ...).
ALTER TABLE worklist ADD COLUMN IF NOT EXISTS reason text;
