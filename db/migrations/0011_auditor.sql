-- The auditor (审计员, issue 5): reads the log of who saw which personal field, heard
-- which voice message, and what retention erased (GET /api/audit/reveals); sees no case
-- content and no personal field, and changes nothing.
ALTER TABLE agents DROP CONSTRAINT agents_role_check;
ALTER TABLE agents ADD CONSTRAINT agents_role_check
    CHECK (role IN ('agent', 'supervisor', 'supervision', 'handler', 'admin', 'auditor'));

-- The audit listing filters on these actions by time.
CREATE INDEX case_events_audit ON case_events (at)
    WHERE action IN ('personal_revealed', 'recording_played', 'personal_erased',
                     'progress_heard');
