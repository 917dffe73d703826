-- The SIP guard (hotline/sipguard.py): addresses shut out of Asterisk for a while after
-- failing again and again (no such trunk or phone, a wrong password, outside the phones'
-- networks). One row per ban; a lifted or expired ban stays as the record of it.
CREATE TABLE sip_bans (
    id          bigserial PRIMARY KEY,
    address     inet NOT NULL,
    reason      text NOT NULL,   -- the kind of failure that counted most (InvalidAccountID, ...)
    failures    int NOT NULL,    -- failures counted within the window when banned
    banned_at   timestamptz NOT NULL DEFAULT now(),
    until       timestamptz NOT NULL,
    lifted_at   timestamptz,     -- lifted by hand (`hotline sip-bans lift`) before until
    lifted_by   text,
    CHECK (until > banned_at)
);
-- One ban in force per address.
CREATE UNIQUE INDEX sip_bans_in_force ON sip_bans (address) WHERE lifted_at IS NULL;
