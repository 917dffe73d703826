-- Calls out placed from the desk (回拨): the agent's phone rings first, then the citizen,
-- through the trunks. One row per attempt; the number is never stored here (it is read
-- from the case's encrypted field when dialled).
CREATE TABLE outbound_calls (
    id                 bigserial PRIMARY KEY,
    case_id            bigint NOT NULL REFERENCES cases,
    agent_id           int NOT NULL REFERENCES agents,
    purpose            text NOT NULL CHECK (purpose IN ('worklist', 'revisit', 'case')),
    worklist_call_id   uuid,   -- the worklist item this attempt answers, if any
    dial_attempt_id    bigint, -- the dial guard's record (dial_attempts)
    state              text NOT NULL DEFAULT 'requested'
                       CHECK (state IN ('requested', 'agent_ringing', 'citizen_ringing',
                                        'connected', 'ended')),
    outcome            text,   -- reached, busy, no_answer, trunk_failed, agent_no_answer, ...
    trunk              text,
    requested_at       timestamptz NOT NULL DEFAULT now(),
    answered_at        timestamptz,
    ended_at           timestamptz,
    agent_channel_id   text,
    citizen_channel_id text,
    CHECK ((state = 'ended') = (outcome IS NOT NULL))
);
CREATE INDEX outbound_calls_case ON outbound_calls (case_id);
-- One call out at a time per agent.
CREATE UNIQUE INDEX outbound_calls_one_per_agent ON outbound_calls (agent_id)
    WHERE state <> 'ended';
