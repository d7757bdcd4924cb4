-- The legacy workflow's tables: ElevenLabs voice-agent conversations, their AI insights and the audit trail
-- of what was written to HubSpot. Like 0001, a table is created only when it is absent, and an existing
-- table keeps its columns, rows and row-level security. A table created here gets row-level security with
-- no policy except the service_role one below. Every statement runs with search_path set to the target
-- schema.

DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'conversations')) IS NULL THEN
        CREATE TABLE conversations (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            conversation_id text NOT NULL UNIQUE,
            agent_id        text,
            user_id         uuid,
            status          text,
            transcript      text,
            summary         text,
            metadata        jsonb,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;

DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'insights')) IS NULL THEN
        CREATE TABLE insights (
            id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            conversation_id     text NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
            sentiment           text,
            key_points          text[],
            deal_stage          text,
            competitor_mentions text[],
            next_steps          text[],
            created_at          timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE insights ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;

DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'sync_history')) IS NULL THEN
        CREATE TABLE sync_history (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            conversation_id text NOT NULL,
            sync_type       text,
            hubspot_id      text,
            data            jsonb,
            status          text,
            error_message   text,
            created_at      timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE sync_history ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;

-- The newest insights of a conversation, and a conversation's audit trail in order.
CREATE INDEX IF NOT EXISTS insights_conversation_created_idx
    ON insights (conversation_id, created_at DESC);
CREATE INDEX IF NOT EXISTS sync_history_conversation_created_idx
    ON sync_history (conversation_id, created_at);

-- callsync's sync state, the same shape as on telavox_call_sessions. A *_requested_at column records when
-- the create of that object was sent, and is set before the request. HubSpot has no idempotency key and
-- its search lags behind creates, so a conversation that has a *_requested_at and no matching id may
-- already have the object. Its next attempt has to search for the object's marker before creating again.
ALTER TABLE conversations
    ADD COLUMN IF NOT EXISTS sync_status               text NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS sync_attempts             integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS sync_next_attempt_at      timestamptz,
    ADD COLUMN IF NOT EXISTS sync_claim_run_id         text,
    ADD COLUMN IF NOT EXISTS sync_claimed_at           timestamptz,
    ADD COLUMN IF NOT EXISTS sync_reason               text,
    ADD COLUMN IF NOT EXISTS sync_reason_code          text,
    ADD COLUMN IF NOT EXISTS synced_at                 timestamptz,
    ADD COLUMN IF NOT EXISTS hubspot_contact_id        text,
    ADD COLUMN IF NOT EXISTS hubspot_deal_id           text,
    ADD COLUMN IF NOT EXISTS hubspot_note_id           text,
    ADD COLUMN IF NOT EXISTS hubspot_task_id           text,
    ADD COLUMN IF NOT EXISTS hubspot_deal_requested_at timestamptz,
    ADD COLUMN IF NOT EXISTS hubspot_note_requested_at timestamptz,
    ADD COLUMN IF NOT EXISTS hubspot_task_requested_at timestamptz;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conname = 'conversations_sync_status_check'
          AND conrelid = 'conversations'::regclass
    ) THEN
        ALTER TABLE conversations
            ADD CONSTRAINT conversations_sync_status_check
            CHECK (sync_status IN ('pending', 'syncing', 'synced', 'skipped', 'failed'));
    END IF;
END $$;

-- Conversations that the application's older worker already synced. That worker wrote one sync_history
-- row per HubSpot object, so its successful rows give the ids of the objects that exist. The newest id
-- of each type is copied into the conversation's hubspot_*_id column, which marks the object as created.
-- NOTE: the older worker's values of sync_history.sync_type and status are not documented. The names
-- below (contact, deal, note, task and success, in any case) are an assumption.
UPDATE conversations c
SET hubspot_contact_id = coalesce(c.hubspot_contact_id, done.contact_id),
    hubspot_deal_id    = coalesce(c.hubspot_deal_id, done.deal_id),
    hubspot_note_id    = coalesce(c.hubspot_note_id, done.note_id),
    hubspot_task_id    = coalesce(c.hubspot_task_id, done.task_id)
FROM (
    SELECT conversation_id,
           (array_agg(hubspot_id ORDER BY created_at DESC) FILTER (WHERE lower(sync_type) = 'contact'))[1] AS contact_id,
           (array_agg(hubspot_id ORDER BY created_at DESC) FILTER (WHERE lower(sync_type) = 'deal'))[1] AS deal_id,
           (array_agg(hubspot_id ORDER BY created_at DESC) FILTER (WHERE lower(sync_type) = 'note'))[1] AS note_id,
           (array_agg(hubspot_id ORDER BY created_at DESC) FILTER (WHERE lower(sync_type) = 'task'))[1] AS task_id
    FROM sync_history
    WHERE lower(status) = 'success' AND nullif(btrim(hubspot_id), '') IS NOT NULL
    GROUP BY conversation_id
) AS done
WHERE c.conversation_id = done.conversation_id AND c.sync_status = 'pending';

-- A conversation counts as synced once it has both its deal and its note, the two objects every synced
-- conversation gets (the task exists only after a positive conversation). One with a deal but no note
-- stays pending with the deal id filled in, so callsync adds the missing note and, for a positive
-- conversation without a task id, the task.
UPDATE conversations
SET sync_status = 'synced', synced_at = coalesce(updated_at, now())
WHERE sync_status = 'pending' AND hubspot_deal_id IS NOT NULL AND hubspot_note_id IS NOT NULL;

-- The claim query and the sensor read only conversations that may still need work, ordered by when they
-- become due: a pending one when it was created, a failed one at its next attempt, a claimed one when its
-- lease expires (a claim sets sync_next_attempt_at to that time). Only a conversation with status
-- 'done' is synced, because before that its transcript and insights are incomplete. The claim query must
-- repeat this predicate word for word so the planner can use the index.
CREATE INDEX IF NOT EXISTS conversations_sync_due_idx
    ON conversations ((coalesce(sync_next_attempt_at, created_at)))
    WHERE status = 'done'
      AND (sync_status IN ('pending', 'syncing') OR (sync_status = 'failed' AND sync_next_attempt_at IS NOT NULL));

-- Where the Supabase service_role exists, it gets the same policy as on the other tables, on each of these
-- tables that has row-level security on. Plain PostgreSQL has no such role.
DO $$
DECLARE
    table_name text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        FOR table_name IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relrowsecurity
              AND c.relname IN ('conversations', 'insights', 'sync_history')
        LOOP
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
