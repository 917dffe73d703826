-- Envelope encryption (db/keys.py, docs/privacy.md). Data keys live here only wrapped by
-- the key-encryption key (KEK), which never enters the database; the AAD of each wrapped key
-- binds its id and cipher, so a wrapped key copied to another row does not open.
CREATE TABLE data_keys (
    id         text PRIMARY KEY,
    wrapped    bytea NOT NULL,
    kek_id     text NOT NULL,
    cipher     text NOT NULL DEFAULT 'aes-256-gcm',
    created_at timestamptz NOT NULL DEFAULT now(),
    is_primary boolean NOT NULL DEFAULT false,
    retired_at timestamptz,
    -- 'running' while `hotline keys rotate` re-encrypts everything under this key (a run
    -- after an interruption resumes it), 'finished' after; NULL: not made by a rotation.
    rotation   text CHECK (rotation IN ('running', 'finished'))
);
-- At most one primary data key: the one new data is encrypted under.
CREATE UNIQUE INDEX data_keys_one_primary ON data_keys (is_primary) WHERE is_primary;

-- Which index key made each blind index, so rebuilding the index under a new key can
-- resume where it stopped. Rows from before were made with a version-1 file's index key,
-- which goes by the id 'i1'.
ALTER TABLE case_personal ADD COLUMN bidx_key_id text;
UPDATE case_personal SET bidx_key_id = 'i1' WHERE blind_index IS NOT NULL;
-- Rotation finds the rows not yet under the new key.
CREATE INDEX case_personal_key_id ON case_personal (key_id);

-- The data key a voice-message file is encrypted under; NULL: a plaintext file written
-- before encryption at rest (the next rotation encrypts it).
ALTER TABLE case_recordings ADD COLUMN key_id text;
