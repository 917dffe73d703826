-- The dial guard (db/dialguard.py): every number the hotline dials out, or refused to dial,
-- with why. It caps calls per number and per hour, and shows who tried to call what.
-- The number itself is never stored: number_index is its keyed blind index (db/crypto.py,
-- of the national form), or empty when the text held no digits at all ("*#").
-- No foreign keys: an attempt is recorded before the outgoing call has a row, and the log
-- must stay writable whatever state the call, case or desk user is in.
CREATE TABLE dial_attempts (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    number_index bytea NOT NULL,
    purpose      text NOT NULL CHECK (purpose <> ''),
    call_id      uuid,
    case_id      bigint,
    outcome      text NOT NULL CHECK (outcome IN ('dialled', 'refused')),
    reason       text,  -- the refusal's code ('international', 'too_many_for_number', ...)
    agent_id     int,
    CHECK ((outcome = 'dialled') = (reason IS NULL))
);
-- The per-number cap looks up one number's last hour, the per-hour cap everyone's.
CREATE INDEX dial_attempts_number ON dial_attempts (number_index, at);
CREATE INDEX dial_attempts_at ON dial_attempts (at);
