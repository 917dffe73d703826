-- Logins (issue 5): failures counted per account in the database (so a lock-out holds
-- across restarts and desk processes), a record of every login attempt, and the optional
-- second factor (TOTP) of supervisors and admins.

-- Every login success, failure and lock-out, and every unlock. Never a password: the
-- login is recorded only when it names an account (a name that is not one may be a
-- password typed into the wrong box).
CREATE TABLE login_events (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL,
    login    text,
    agent_id int REFERENCES agents ON DELETE SET NULL,
    address  inet,
    outcome  text NOT NULL CHECK (outcome IN (
                 'success', 'failure', 'totp_failure', 'lockout', 'locked',
                 'address_limited', 'unlocked', 'totp_enabled', 'totp_disabled')),
    -- Who unlocked the account or reset its second factor (NULL for the user's own login).
    actor_id int REFERENCES agents ON DELETE SET NULL
);
CREATE INDEX login_events_address ON login_events (address, at);
CREATE INDEX login_events_agent ON login_events (agent_id, at);

-- Failed logins per login name within the current window, and the lock they caused.
-- Keyed by a hash of the name so unknown names count too (the answer must not tell
-- which logins exist) without storing what was typed.
CREATE TABLE login_throttle (
    login_key    bytea PRIMARY KEY,
    agent_id     int REFERENCES agents ON DELETE CASCADE,
    failures     int NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);
CREATE INDEX login_throttle_agent ON login_throttle (agent_id);

-- The TOTP secret, encrypted with the keyring (associated data 'agent_totp:<agent id>');
-- last_step is the last 30-second step whose code was accepted: a code works once.
CREATE TABLE agent_totp (
    agent_id     int PRIMARY KEY REFERENCES agents ON DELETE CASCADE,
    key_id       text NOT NULL,
    secret       bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint NOT NULL DEFAULT 0
);
