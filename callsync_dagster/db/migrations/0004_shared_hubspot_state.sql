-- State that every callsync run against one HubSpot account must share: the rate-limit windows, the map
-- from phone number to contact, and the time each session's CALL create was sent. Runs are separate
-- processes, so this lives in the database rather than in memory.

-- 1. Rate limits. One row per limit ("<portal>:general:<token hash>", "<portal>:search"). `slots` holds
-- the send times reserved within the last window, oldest first; `paused_until` holds back every request
-- after a 429, a used-up daily limit or a 477.
CREATE TABLE IF NOT EXISTS callsync_rate_limit_windows (
    bucket        text PRIMARY KEY,
    slots         timestamptz[] NOT NULL DEFAULT '{}',
    paused_until  timestamptz,
    pause_reason  text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Reserve the next send time in a bucket so that no window of `window_ms` holds more than `max_requests`
-- sends, and return how many seconds the caller must wait for it. When that is more than `max_wait_ms`
-- (the bucket is paused for a daily limit, say), nothing is reserved and the pause's reason comes back:
-- the caller stops instead of waiting. The row lock serialises concurrent callers, and one round trip per
-- request keeps the cost low even over a remote connection.
-- SET search_path FROM CURRENT pins the schema the migration runs in, whatever the caller's path.
CREATE OR REPLACE FUNCTION callsync_reserve_rate_slot(
    p_bucket text, p_max_requests integer, p_window_ms integer, p_max_wait_ms bigint,
    OUT wait_seconds double precision, OUT reserved boolean, OUT pause_reason text
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    now_at      timestamptz;
    window_size interval := make_interval(secs => p_window_ms / 1000.0);
    earlier     timestamptz[];
    kept        timestamptz[];
    paused      timestamptz;
    slot        timestamptz;
BEGIN
    INSERT INTO callsync_rate_limit_windows (bucket) VALUES (p_bucket) ON CONFLICT (bucket) DO NOTHING;
    SELECT w.slots, w.paused_until, w.pause_reason INTO earlier, paused, pause_reason
    FROM callsync_rate_limit_windows w WHERE w.bucket = p_bucket FOR UPDATE;
    -- Read the clock only once the lock is held, so a caller that waited for it does not reserve the past.
    now_at := clock_timestamp();
    SELECT coalesce(array_agg(sent ORDER BY sent), '{}') INTO kept
    FROM unnest(earlier) AS sent WHERE sent > now_at - window_size;

    -- A pause that has ended explains nothing: a refusal then means a full window.
    IF paused IS NULL OR paused <= now_at THEN
        pause_reason := NULL;
    END IF;
    slot := greatest(now_at, coalesce(paused, now_at));
    IF cardinality(kept) >= p_max_requests THEN
        -- The window may hold max_requests - 1 others: wait until the max_requests-th newest leaves it.
        slot := greatest(slot, kept[cardinality(kept) - p_max_requests + 1] + window_size);
    END IF;

    wait_seconds := extract(epoch FROM slot - now_at);
    reserved := wait_seconds * 1000 <= p_max_wait_ms;
    IF reserved THEN
        -- Only the newest max_requests - 1 reservations can hold back a later one.
        UPDATE callsync_rate_limit_windows
        SET slots = kept[greatest(cardinality(kept) - p_max_requests + 2, 1):] || slot, updated_at = now_at
        WHERE bucket = p_bucket;
    END IF;
END
$$;

-- 2. Phone number to HubSpot contact, per account. A row is written before a contact create is sent
-- ('creating') and completed with the id afterwards ('known'), so one number seen twice in a batch, by two
-- concurrent runs, or within HubSpot's search lag yields one contact.
CREATE TABLE IF NOT EXISTS callsync_contact_numbers (
    portal        text NOT NULL,
    phone_e164    text NOT NULL,
    contact_id    text,
    state         text NOT NULL CHECK (state IN ('creating', 'known')),
    run_id        text,
    requested_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portal, phone_e164),
    CHECK (state = 'creating' OR contact_id IS NOT NULL)
);

-- 3. When a CALL create was last sent for a session. Set before the request, in the same transaction
-- that extends the claim; a session with it set and no CALL id may have a CALL that search cannot show yet.
ALTER TABLE telavox_call_sessions
    ADD COLUMN IF NOT EXISTS hubspot_call_requested_at timestamptz;

-- Sessions that an earlier callsync version sent a create for, and that have no CALL id, keep that fact.
UPDATE telavox_call_sessions s
SET hubspot_call_requested_at = log.requested_at
FROM (
    SELECT call_session_id, max(created_at) AS requested_at
    FROM callsync_sync_log WHERE action = 'call_create_requested' GROUP BY call_session_id
) AS log
WHERE s.id = log.call_session_id AND s.hubspot_engagement_id IS NULL AND s.hubspot_call_requested_at IS NULL;

ALTER TABLE callsync_rate_limit_windows ENABLE ROW LEVEL SECURITY;
ALTER TABLE callsync_contact_numbers ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    table_name text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        FOREACH table_name IN ARRAY ARRAY['callsync_rate_limit_windows', 'callsync_contact_numbers'] LOOP
            IF NOT EXISTS (
                SELECT 1 FROM pg_policies
                WHERE schemaname = current_schema() AND tablename = table_name
                  AND policyname = 'callsync_service_role_all'
            ) THEN
                EXECUTE format(
                    'CREATE POLICY callsync_service_role_all ON %I FOR ALL TO service_role USING (true) WITH CHECK (true)',
                    table_name
                );
            END IF;
        END LOOP;
    END IF;
END $$;
