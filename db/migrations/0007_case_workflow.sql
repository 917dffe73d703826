-- The case workflow of the Mayor's Hotline, from intake to archive: linkage units,
-- assignment with deadlines in working days, the unit's side (accept, return, extension,
-- result), urging, review and revisit, re-handling, merge, special reports, and an audit
-- trail no one can edit. No personal data outside case_personal.

-- Desk roles: duty agent, duty supervisor, the government supervision office (督查室),
-- a linkage unit's handler, and the admin (configuration, no personal data).
ALTER TABLE agents DROP CONSTRAINT agents_role_check;
ALTER TABLE agents ADD CONSTRAINT agents_role_check
    CHECK (role IN ('agent', 'supervisor', 'supervision', 'handler', 'admin'));

-- The directory of network linkage units, three levels (parent and children).
CREATE TABLE units (
    id             serial PRIMARY KEY,
    code           text NOT NULL UNIQUE,
    name           text NOT NULL,
    parent_id      int REFERENCES units,
    level          int NOT NULL CHECK (level BETWEEN 1 AND 3),
    kind           text NOT NULL DEFAULT 'department',
    duty_phone     text NOT NULL DEFAULT '',
    leader         text NOT NULL DEFAULT '',
    department     text NOT NULL DEFAULT '',
    contact_person text NOT NULL DEFAULT '',
    contact_phone  text NOT NULL DEFAULT '',
    active         boolean NOT NULL DEFAULT true,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX units_parent ON units (parent_id);
ALTER TABLE agents ADD COLUMN unit_id int REFERENCES units;

-- Categories: a coded tree, editable; gbt_code maps to GB/T 39666 where known.
ALTER TABLE categories
    ADD COLUMN gbt_code text,
    ADD COLUMN active boolean NOT NULL DEFAULT true;

-- China's official calendar: only the exceptions are stored (public holidays on weekdays,
-- working weekends of 调休); every other Monday-Friday works and every weekend rests.
CREATE TABLE calendar_days (
    day     date PRIMARY KEY,
    working boolean NOT NULL,
    name    text NOT NULL DEFAULT '',
    source  text NOT NULL CHECK (source IN ('chinesecalendar', 'admin')),
    set_by  int REFERENCES agents,
    set_at  timestamptz NOT NULL DEFAULT now()
);

-- Knowledge base of questions and answers, searchable from the case form.
CREATE TABLE knowledge (
    id         serial PRIMARY KEY,
    question   text NOT NULL,
    answer     text NOT NULL,
    keywords   text NOT NULL DEFAULT '',
    category   text REFERENCES categories,
    active     boolean NOT NULL DEFAULT true,
    updated_by int REFERENCES agents,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The case itself. Statuses:
--   intake -> invalid (not a case: reason kept, personal fields erased)
--          -> closed (answered on the call) | pending (to be assigned)
--   pending -> assigned -> accepted -> reported -> reviewed -> closed -> archived
--   returned (a unit sent it back; the hotline reassigns), merged (into a parent case),
--   reviewed + unsatisfied revisit -> assigned again (re-handling).
ALTER TABLE cases
    ADD COLUMN title            text NOT NULL DEFAULT '',
    ADD COLUMN validity         jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN invalid_reason   text,
    ADD COLUMN answer           text NOT NULL DEFAULT '',
    ADD COLUMN knowledge_id     int REFERENCES knowledge,
    ADD COLUMN verify_hash      text,
    ADD COLUMN parent_case_id   bigint REFERENCES cases,
    ADD COLUMN major            boolean NOT NULL DEFAULT false,
    ADD COLUMN lead_unit_id     int REFERENCES units,
    ADD COLUMN mode             text CHECK (mode IN ('written', 'phone', 'urgent')),
    ADD COLUMN round            int NOT NULL DEFAULT 0,
    ADD COLUMN received_at      timestamptz,
    ADD COLUMN due_at           timestamptz,
    ADD COLUMN reported_at      timestamptz,
    ADD COLUMN closed_at        timestamptz,
    ADD COLUMN archived_at      timestamptz,
    ADD COLUMN urge_count       int NOT NULL DEFAULT 0,
    ADD COLUMN rehandle_count   int NOT NULL DEFAULT 0,
    ADD COLUMN return_count     int NOT NULL DEFAULT 0,
    ADD COLUMN satisfaction     text CHECK (satisfaction IN ('satisfied', 'unsatisfied')),
    ADD COLUMN replied          boolean NOT NULL DEFAULT false,
    ADD COLUMN result           text NOT NULL DEFAULT '',
    ADD COLUMN public_summary   text NOT NULL DEFAULT '';
ALTER TABLE cases ADD CONSTRAINT cases_status_check CHECK (status IN (
    'intake', 'invalid', 'pending', 'assigned', 'accepted', 'returned', 'reported',
    'reviewed', 'closed', 'archived', 'merged'));
CREATE INDEX cases_status ON cases (status);
CREATE INDEX cases_due ON cases (due_at) WHERE status IN ('assigned', 'accepted');
CREATE INDEX cases_parent ON cases (parent_case_id) WHERE parent_case_id IS NOT NULL;

-- A case's units: one lead (主办) and any co-handling (协办) units, per handling round.
CREATE TABLE assignments (
    id           bigserial PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES cases,
    unit_id      int NOT NULL REFERENCES units,
    role         text NOT NULL CHECK (role IN ('lead', 'co')),
    mode         text NOT NULL CHECK (mode IN ('written', 'phone', 'urgent')),
    round        int NOT NULL,
    status       text NOT NULL DEFAULT 'assigned'
                 CHECK (status IN ('assigned', 'accepted', 'returned', 'reported', 'done',
                                   'withdrawn')),
    note         text NOT NULL DEFAULT '',
    assigned_by  int REFERENCES agents,
    assigned_at  timestamptz NOT NULL,
    due_at       timestamptz,
    accepted_by  int REFERENCES agents,
    accepted_at  timestamptz,
    return_reason text,
    returned_at  timestamptz,
    result       text NOT NULL DEFAULT '',
    reply        text NOT NULL DEFAULT '',
    reported_by  int REFERENCES agents,
    reported_at  timestamptz
);
CREATE INDEX assignments_case ON assignments (case_id);
CREATE INDEX assignments_unit ON assignments (unit_id, status);

-- An extension asked for by a unit before its deadline, decided by the hotline.
CREATE TABLE extensions (
    id            bigserial PRIMARY KEY,
    assignment_id bigint NOT NULL REFERENCES assignments,
    case_id       bigint NOT NULL REFERENCES cases,
    asked_by      int REFERENCES agents,
    asked_at      timestamptz NOT NULL,
    reason        text NOT NULL,
    days          int NOT NULL CHECK (days BETWEEN 1 AND 60),
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved',
                                                                     'refused')),
    decided_by    int REFERENCES agents,
    decided_at    timestamptz,
    new_due_at    timestamptz
);

-- Every urging, automatic (the scheduled job) or by hand.
CREATE TABLE urgings (
    id            bigserial PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES cases,
    assignment_id bigint REFERENCES assignments,
    unit_id       int NOT NULL REFERENCES units,
    kind          text NOT NULL CHECK (kind IN ('auto', 'manual')),
    by_agent      int REFERENCES agents,
    at            timestamptz NOT NULL,
    note          text NOT NULL DEFAULT ''
);
CREATE INDEX urgings_case ON urgings (case_id);

-- The hotline's call back to the citizen after a result (回访).
CREATE TABLE revisits (
    id      bigserial PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES cases,
    round   int NOT NULL,
    by_agent int REFERENCES agents,
    at      timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('satisfied', 'unsatisfied', 'unreachable')),
    note    text NOT NULL DEFAULT ''
);

-- Special reports (专报) to the supervision office, the secretary-general or the mayor;
-- a major emergency goes to the emergency office at once.
CREATE TABLE special_reports (
    id         bigserial PRIMARY KEY,
    case_ids   bigint[] NOT NULL,
    recipient  text NOT NULL CHECK (recipient IN ('supervision', 'secretary_general', 'mayor',
                                                  'emergency_office')),
    title      text NOT NULL,
    body       text NOT NULL,
    status     text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'sent')),
    created_by int REFERENCES agents,
    created_at timestamptz NOT NULL,
    sent_at    timestamptz
);

-- The audit trail: who did what and when on every case. Append only.
CREATE TABLE case_events (
    id       bigserial PRIMARY KEY,
    case_id  bigint NOT NULL REFERENCES cases,
    at       timestamptz NOT NULL,
    actor_id int REFERENCES agents,
    action   text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_events_case ON case_events (case_id, id);
CREATE INDEX case_events_at ON case_events (at);

CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the case audit trail cannot be changed or deleted';
END $$;
CREATE TRIGGER case_events_append_only BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_events_append_only();
