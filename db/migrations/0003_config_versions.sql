-- Every attempt to apply the hotline YAML (`hotline config apply` / `rollback`), kept so
-- an applied version can be rolled back to and an audit can say who changed what, when.

CREATE TABLE config_versions (
    id          bigserial PRIMARY KEY,
    -- The YAML exactly as it was applied (or tried), and the sha256 of its UTF-8 bytes.
    yaml        text NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- The operating-system user who ran the command ("root (sudo alice)" under sudo).
    applied_by  text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    -- applied:     it went live (the newest applied row is what runs now);
    -- failed:      refused or put back, `error` says why; the previous one kept running;
    -- rolled_back: it went live and was later replaced by `hotline config rollback`.
    status      text NOT NULL CHECK (status IN ('applied', 'failed', 'rolled_back')),
    error       text,
    -- apply:    `hotline config apply FILE`;
    -- rollback: `hotline config rollback N` (rollback_of = N);
    -- baseline: the YAML the hotline was already running, recorded by the first apply
    --           that found it unrecorded, so that it can be rolled back to.
    origin      text NOT NULL DEFAULT 'apply' CHECK (origin IN ('apply', 'rollback', 'baseline')),
    source      text NOT NULL DEFAULT '',
    rollback_of bigint REFERENCES config_versions,
    CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX config_versions_live ON config_versions (id) WHERE status = 'applied';
CREATE INDEX config_versions_sha256 ON config_versions (sha256);
