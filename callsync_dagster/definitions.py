"""The Dagster code location of callsync: jobs, sensors and the resources they use."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, mem_io_manager

from callsync_dagster.jobs import sync_calls_to_hubspot
from callsync_dagster.resources.hubspot import DEFAULT_BASE_URL, HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from callsync_dagster.sensors.call_sessions import call_sessions_due_sensor

defs = Definitions(
    jobs=[sync_calls_to_hubspot],
    sensors=[call_sessions_due_sensor],
    resources={
        # Op outputs carry transcripts, which are personal data: keep them in the run's memory instead of
        # pickling them under DAGSTER_HOME. The job runs in one process, so nothing needs them on disk.
        "io_manager": mem_io_manager,
        # Secrets are EnvVar so Dagster resolves them at run launch and never shows their values.
        "postgres": PostgresResource(
            database_url=EnvVar("CALLSYNC_DATABASE_URL"),
            db_schema=os.environ.get("CALLSYNC_DB_SCHEMA", "public"),
        ),
        "hubspot": HubSpotResource(
            access_token=EnvVar("HUBSPOT_ACCESS_TOKEN"),
            base_url=os.environ.get("HUBSPOT_BASE_URL", DEFAULT_BASE_URL),
            requests_per_ten_seconds=int(os.environ.get("HUBSPOT_REQUESTS_PER_TEN_SECONDS", "100")),
        ),
        "settings": CallSyncSettings(
            default_region=os.environ.get("CALLSYNC_DEFAULT_REGION", "SE"),
            timezone=os.environ.get("CALLSYNC_TIMEZONE", "Europe/Stockholm"),
            contact_policy="skip" if os.environ.get("CALLSYNC_CONTACT_POLICY") == "skip" else "create",
        ),
    },
)
