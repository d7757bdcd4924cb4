-- Supabase deployments keep these tables behind row-level security that admits only the service role.
-- callsync connects as a role that bypasses RLS (the table owner or the service role's user), so
-- enabling it changes nothing for callsync and keeps the tables closed to Supabase's public API roles.

ALTER TABLE telavox_call_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE transcriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE blocked_numbers ENABLE ROW LEVEL SECURITY;
ALTER TABLE telavox_api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE telavox_org_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE callsync_sync_log ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    table_name text;
BEGIN
    -- service_role exists only on Supabase; plain PostgreSQL gets RLS without policies.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        FOREACH table_name IN ARRAY ARRAY[
            'telavox_call_sessions', 'transcriptions', 'blocked_numbers',
            'telavox_api_keys', 'telavox_org_configs', 'callsync_sync_log'
        ] LOOP
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
