-- callsync's own table is closed to Supabase's public API roles like the application's tables. Where the
-- Supabase service_role exists, it gets a policy on every table in this schema that has row-level
-- security on, so the application's service key keeps working; plain PostgreSQL has no such role.

ALTER TABLE callsync_sync_log ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    table_name text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        FOR table_name IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relrowsecurity
              AND c.relname IN ('telavox_call_sessions', 'transcriptions', 'blocked_numbers',
                                'telavox_api_keys', 'telavox_org_configs', 'callsync_sync_log')
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
