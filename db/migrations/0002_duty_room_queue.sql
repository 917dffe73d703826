-- The queue a 24-hour duty room runs on: agent states with wrap-up and pause reasons,
-- roles, queue membership, caller priority, and one row per ringing agent leg.

ALTER TABLE agents DROP CONSTRAINT agents_state_check;
UPDATE agents SET state = 'paused' WHERE state = 'not_ready';
UPDATE agent_state_log SET state = 'paused' WHERE state = 'not_ready';
ALTER TABLE agents ADD CONSTRAINT agents_state_check
    CHECK (state IN ('logged_out', 'ready', 'ringing', 'on_call', 'wrap_up', 'paused'));

ALTER TABLE agents
    ADD COLUMN role text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor')),
    -- Queues the agent serves; empty means every queue.
    ADD COLUMN queues text[] NOT NULL DEFAULT '{}',
    ADD COLUMN wrap_up_until timestamptz,
    -- Asked for during a call, carried out when it ends: 'logout' or 'pause:<reason>'.
    ADD COLUMN after_call text,
    ALTER COLUMN phone DROP NOT NULL;

ALTER TABLE calls ADD COLUMN priority int NOT NULL DEFAULT 0;

-- The agents whose phones ring for a call right now (one, or all with ring_all).
CREATE TABLE call_offers (
    call_id    uuid NOT NULL REFERENCES calls,
    agent_id   int NOT NULL REFERENCES agents,
    channel_id text,
    offered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, agent_id)
);
CREATE INDEX call_offers_agent ON call_offers (agent_id);

-- Round robin with memory: the agent who was offered the last call of each queue.
CREATE TABLE queue_round_robin (
    queue         text PRIMARY KEY,
    last_agent_id int NOT NULL
);

CREATE INDEX queue_log_agent_event ON queue_log (agent_id, event, at);
