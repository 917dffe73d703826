-- Lookups of a case's progress by phone (casework/progress.py), one row each, so wrong
-- codes are counted per calling number (its blind index; NULL for a withheld number) and
-- not per case: a stranger's wrong codes must not lock a citizen out of their own case.
-- Kept two days (purged by the scheduled jobs), never the number itself.
CREATE TABLE progress_attempts (
    id           bigserial PRIMARY KEY,
    caller_index bytea,          -- blind index of the calling number; NULL: withheld
    case_id      bigint,         -- the case asked about, when the number exists
    ok           boolean NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX progress_attempts_caller ON progress_attempts (caller_index, at);
CREATE INDEX progress_attempts_case ON progress_attempts (case_id, at) WHERE NOT ok;
