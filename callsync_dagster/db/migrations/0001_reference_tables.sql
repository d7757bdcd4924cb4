-- Tables of the application that callsync runs beside (Telavox webhooks, transcription, settings).
-- Real deployments already have them, and an existing table is left exactly as it is, row-level security
-- included. A table created here (new installs, the demo, the tests) gets row-level security with no
-- policy, as Supabase deployments keep these tables closed to the public API roles; callsync connects as
-- a role that bypasses it. Every statement runs with search_path set to the target schema.


DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'telavox_call_sessions')) IS NULL THEN
        CREATE TABLE telavox_call_sessions (
            id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            telavox_call_id       text NOT NULL UNIQUE,
            telavox_org_id        text,
            hubspot_portal_id     text,
            direction             text,
            from_number           text,
            to_number             text,
            agent_user_id         text,
            hubspot_contact_id    text,
            hubspot_deal_id       text,
            started_at            timestamptz,
            answered_at           timestamptz,
            ended_at              timestamptz,
            recording_url         text,
            recording_status      text,
            transcription_status  text,
            transcript            text,
            summary               text,
            sentiment             text,
            insights_json         jsonb,
            hubspot_engagement_id text,
            last_error            text,
            created_at            timestamptz NOT NULL DEFAULT now(),
            updated_at            timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE telavox_call_sessions ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;

DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'transcriptions')) IS NULL THEN
        CREATE TABLE transcriptions (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            call_session_id uuid NOT NULL REFERENCES telavox_call_sessions (id) ON DELETE CASCADE,
            full_text       text NOT NULL,
            speaker_labels  jsonb,
            summary         text,
            language        text,
            created_at      timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE transcriptions ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;

DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'blocked_numbers')) IS NULL THEN
        CREATE TABLE blocked_numbers (
            id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            phone_number text NOT NULL UNIQUE,
            reason       text,
            created_at   timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE blocked_numbers ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;

DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'telavox_api_keys')) IS NULL THEN
        CREATE TABLE telavox_api_keys (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            agent_email     text NOT NULL UNIQUE,
            hubspot_user_id text,
            created_at      timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE telavox_api_keys ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;

DO $$
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'telavox_org_configs')) IS NULL THEN
        CREATE TABLE telavox_org_configs (
            id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            telavox_org_id    text NOT NULL UNIQUE,
            hubspot_portal_id text,
            created_at        timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE telavox_org_configs ENABLE ROW LEVEL SECURITY;
    END IF;
END $$;
