-- Voice messages (and later call recordings) attached to cases. The audio itself lives in
-- the install's recordings folder (mode 0600); it holds personal data too.
CREATE TABLE case_recordings (
    id         bigserial PRIMARY KEY,
    case_id    bigint NOT NULL REFERENCES cases,
    call_id    uuid REFERENCES calls,
    kind       text NOT NULL CHECK (kind IN ('voice_message', 'call')),
    file       text NOT NULL,
    seconds    real,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_recordings_case ON case_recordings (case_id);
