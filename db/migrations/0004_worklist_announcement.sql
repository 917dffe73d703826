-- Calls the hotline owes a call back (abandoned in the queue, callback asked for, voice
-- message left), as the national rules require, and the duty supervisor's message.

CREATE TABLE worklist (
    call_id    uuid PRIMARY KEY REFERENCES calls,
    kind       text NOT NULL CHECK (kind IN ('abandoned', 'callback', 'voice_message')),
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    outcome    text CHECK (outcome IN ('reached', 'no_answer', 'invalid')),
    attempts   int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_by    int REFERENCES agents,
    done_at    timestamptz
);
CREATE INDEX worklist_open ON worklist (created_at) WHERE status = 'open';

-- One row: what callers hear before the queue when the duty supervisor switches it on.
CREATE TABLE announcement (
    id     int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    mode   text NOT NULL DEFAULT 'off' CHECK (mode IN ('off', 'emergency', 'after_hours')),
    text   text NOT NULL DEFAULT '',
    set_by int REFERENCES agents,
    set_at timestamptz
);
INSERT INTO announcement (id) VALUES (1);
