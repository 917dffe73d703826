-- Callback that keeps the caller's place: the caller hangs up, the call keeps its place
-- in line (state 'waiting', same entered_queue_at); when its turn comes an agent is
-- connected first and then the caller is called back.
ALTER TABLE calls ADD COLUMN callback_at timestamptz;
ALTER TABLE calls ADD COLUMN callback_channel_id text;
