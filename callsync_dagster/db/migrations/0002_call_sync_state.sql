-- callsync's own state. Columns are added to the application's call session table so that "the next
-- eligible sessions" is one partial-index scan; ADD COLUMN with a constant default rewrites no rows
-- (PostgreSQL 11 and later), so application data is not touched.

ALTER TABLE telavox_call_sessions
    ADD COLUMN IF NOT EXISTS sync_status          text NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS sync_attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS sync_next_attempt_at timestamptz,
    ADD COLUMN IF NOT EXISTS sync_claim_run_id    text,
    ADD COLUMN IF NOT EXISTS sync_claimed_at      timestamptz,
    ADD COLUMN IF NOT EXISTS sync_reason          text,
    ADD COLUMN IF NOT EXISTS sync_reason_code     text,
    ADD COLUMN IF NOT EXISTS synced_at            timestamptz,
    ADD COLUMN IF NOT EXISTS hubspot_company_id   text;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conname = 'telavox_call_sessions_sync_status_check'
          AND conrelid = 'telavox_call_sessions'::regclass
    ) THEN
        ALTER TABLE telavox_call_sessions
            ADD CONSTRAINT telavox_call_sessions_sync_status_check
            CHECK (sync_status IN ('pending', 'syncing', 'synced', 'skipped', 'failed'));
    END IF;
END $$;

-- Sessions that the application's older worker already synced keep their CALL: mark them synced so
-- callsync does not look them up again.
UPDATE telavox_call_sessions
SET sync_status = 'synced', synced_at = coalesce(updated_at, now())
WHERE sync_status = 'pending' AND hubspot_engagement_id IS NOT NULL;

-- The claim query and the sensor read only rows that may still need work, ordered by when they become
-- due: a pending row when it ended, a failed row at its next attempt, a claimed row when its lease
-- expires (a claim sets sync_next_attempt_at to that time). The partial index holds only those rows,
-- so the scan stays short however many synced, skipped or finally failed rows pile up. The claim query
-- repeats this predicate word for word so the planner can use the index.
CREATE INDEX IF NOT EXISTS telavox_call_sessions_sync_due_idx
    ON telavox_call_sessions ((coalesce(sync_next_attempt_at, ended_at)))
    WHERE ended_at IS NOT NULL
      AND (sync_status IN ('pending', 'syncing') OR (sync_status = 'failed' AND sync_next_attempt_at IS NOT NULL));

CREATE INDEX IF NOT EXISTS transcriptions_call_session_created_idx
    ON transcriptions (call_session_id, created_at DESC);

-- One row per action callsync takes for a session: the audit trail.
CREATE TABLE IF NOT EXISTS callsync_sync_log (
    id                     bigserial PRIMARY KEY,
    call_session_id        uuid NOT NULL,
    run_id                 text,
    action                 text NOT NULL,
    hubspot_object_id      text,
    hubspot_correlation_id text,
    error                  text,
    detail                 jsonb,
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS callsync_sync_log_session_idx
    ON callsync_sync_log (call_session_id, created_at);
