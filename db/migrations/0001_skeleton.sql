-- The walking skeleton: agents, calls in the queue, cases with encrypted personal fields.

CREATE TABLE agents (
    id            serial PRIMARY KEY,
    login         text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    phone         text NOT NULL,
    password_hash text,
    state         text NOT NULL DEFAULT 'logged_out'
                  CHECK (state IN ('logged_out', 'not_ready', 'ready', 'ringing', 'on_call')),
    reason        text,
    state_since   timestamptz NOT NULL DEFAULT now(),
    -- When the agent last became free: the longest-idle agent is offered the next call.
    idle_since    timestamptz NOT NULL DEFAULT now(),
    active        boolean NOT NULL DEFAULT true
);

-- Every agent state change, timestamped.
CREATE TABLE agent_state_log (
    id       bigserial PRIMARY KEY,
    agent_id int NOT NULL REFERENCES agents,
    state    text NOT NULL,
    reason   text,
    at       timestamptz NOT NULL DEFAULT now()
);

-- One row per citizen call. No personal data here: the caller's number lives,
-- encrypted, with the case.
CREATE TABLE calls (
    id               uuid PRIMARY KEY,
    channel_id       text NOT NULL UNIQUE,
    dialled_number   text NOT NULL,
    service          text,
    queue            text NOT NULL,
    state            text NOT NULL DEFAULT 'ivr'
                     CHECK (state IN ('ivr', 'waiting', 'offered', 'connected', 'ended')),
    case_id          bigint,
    arrived_at       timestamptz NOT NULL DEFAULT now(),
    entered_queue_at timestamptz,
    answered_at      timestamptz,
    ended_at         timestamptz,
    end_reason       text,
    agent_id         int REFERENCES agents,
    agent_channel_id text,
    bridge_id        text
);
CREATE INDEX calls_waiting ON calls (queue, entered_queue_at) WHERE state = 'waiting';
CREATE INDEX calls_live ON calls (state) WHERE state <> 'ended';

-- The queue's event log, shaped like Asterisk's queue_log (ENTERQUEUE, CONNECT, ABANDON...).
CREATE TABLE queue_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    call_id  uuid,
    queue    text,
    agent_id int,
    event    text NOT NULL,
    data     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX queue_log_at ON queue_log (at);

CREATE SEQUENCE case_no_seq;

CREATE TABLE cases (
    id              bigserial PRIMARY KEY,
    case_no         text NOT NULL UNIQUE,
    call_id         uuid REFERENCES calls,
    dialled_number  text NOT NULL,
    service         text NOT NULL,
    category        text,
    content         text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'intake',
    caller_withheld boolean NOT NULL DEFAULT false,
    agent_id        int REFERENCES agents,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE calls ADD FOREIGN KEY (case_id) REFERENCES cases;

-- Personal fields of a case, only as ciphertext (AES-256-GCM, row and field bound in as
-- associated data) with the id of the key beside it. Phone numbers also carry a keyed
-- blind index so a repeat caller can be found without decrypting.
CREATE TABLE case_personal (
    case_id     bigint NOT NULL REFERENCES cases ON DELETE CASCADE,
    field       text NOT NULL CHECK (field IN ('caller_number', 'callback_number', 'name',
                                               'address', 'work_unit')),
    key_id      text NOT NULL,
    ciphertext  bytea NOT NULL,
    blind_index bytea,
    PRIMARY KEY (case_id, field)
);
CREATE INDEX case_personal_blind_index ON case_personal (blind_index)
    WHERE blind_index IS NOT NULL;

-- Intake categories: the six acceptance categories of the hotline, plus 63160000's services.
CREATE TABLE categories (
    code   text PRIMARY KEY,
    parent text REFERENCES categories,
    name   text NOT NULL,
    sort   int NOT NULL DEFAULT 0
);
INSERT INTO categories (code, parent, name, sort) VALUES
    ('01', NULL, '对行政机关及其工作人员的批评、意见和建议', 1),
    ('02', NULL, '改革开放、经济建设、发展环境、市政建设和城市管理方面的意见', 2),
    ('03', NULL, '政府部门职责、办事程序和政策方面的咨询与建议', 3),
    ('04', NULL, '直接关系群众生活的问题及突发事件处置', 4),
    ('05', NULL, '需要行政协调解决的社会生活问题', 5),
    ('06', NULL, '对市政府出台政策和规范性文件的咨询与建议', 6),
    ('91', NULL, '新闻线索', 91),
    ('92', NULL, '便民信息查询', 92),
    ('93', NULL, '热线互动', 93);

-- Desk logins: only a hash of the session token is stored.
CREATE TABLE desk_sessions (
    token_hash   bytea PRIMARY KEY,
    agent_id     int NOT NULL REFERENCES agents,
    csrf         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Heartbeats of the running services, read by `hotline status`.
CREATE TABLE service_status (
    name       text PRIMARY KEY,
    pid        int,
    details    jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
