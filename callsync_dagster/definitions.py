"""The Dagster code location of callsync: jobs, sensors and the resources they use."""

from __future__ import annotations

import os
import warnings

from dagster import BetaWarning, Definitions, EnvVar, mem_io_manager

from callsync_dagster.environment import int_from_environment, portal_token_variables
from callsync_dagster.jobs import backfill_calls_by_day, sync_calls_to_hubspot, sync_conversations_to_hubspot
from callsync_dagster.resources.hubspot import DEFAULT_BASE_URL, HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from callsync_dagster.schedules import nightly_backfill_schedule
from callsync_dagster.sensors.call_sessions import call_sessions_due_sensor
from callsync_dagster.sensors.conversations import conversations_due_sensor
from callsync_dagster.sensors.run_failures import release_sessions_of_cancelled_runs, release_sessions_of_failed_runs

# Dagster 1.13 marks parts of every sensor definition as beta and warns on each load. The warning is
# about Dagster, not callsync, and buries callsync's own output.
warnings.filterwarnings("ignore", category=BetaWarning)


defs = Definitions(
    jobs=[sync_calls_to_hubspot, backfill_calls_by_day, sync_conversations_to_hubspot],
    schedules=[nightly_backfill_schedule],
    sensors=[
        call_sessions_due_sensor,
        release_sessions_of_failed_runs,
        release_sessions_of_cancelled_runs,
        conversations_due_sensor,
    ],
    resources={
        # Op outputs carry transcripts, which are personal data: keep them in the run's memory instead of
        # pickling them under DAGSTER_HOME. The job runs in one process, so nothing needs them on disk.
        "io_manager": mem_io_manager,
        # Secrets are EnvVar so Dagster resolves them at run launch and never shows their values.
        "postgres": PostgresResource(
            database_url=EnvVar("CALLSYNC_DATABASE_URL"),
            db_schema=os.environ.get("CALLSYNC_DB_SCHEMA", "public"),
        ),
        # The rate-limit windows live in the same database, so every run against the account shares them.
        "hubspot": HubSpotResource(
            access_token=EnvVar("HUBSPOT_ACCESS_TOKEN"),
            base_url=os.environ.get("HUBSPOT_BASE_URL", DEFAULT_BASE_URL),
            requests_per_ten_seconds=int_from_environment("HUBSPOT_REQUESTS_PER_TEN_SECONDS", 100),
            searches_per_second=int_from_environment("HUBSPOT_SEARCHES_PER_SECOND", 4),
            portal=os.environ.get("HUBSPOT_PORTAL", "default"),
            portal_token_variables=portal_token_variables(os.environ.get("HUBSPOT_PORTALS", "")),
            account_time_zone=os.environ.get("HUBSPOT_ACCOUNT_TIME_ZONE", "Europe/Stockholm"),
            rate_limit_database_url=EnvVar("CALLSYNC_DATABASE_URL"),
            rate_limit_db_schema=os.environ.get("CALLSYNC_DB_SCHEMA", "public"),
        ),
        # pydantic rejects an unknown region, time zone or contact policy with the value in the message.
        "settings": CallSyncSettings(
            default_region=os.environ.get("CALLSYNC_DEFAULT_REGION", "SE"),
            timezone=os.environ.get("CALLSYNC_TIMEZONE", "Europe/Stockholm"),
            contact_policy=os.environ.get("CALLSYNC_CONTACT_POLICY", "create"),  # type: ignore[arg-type]
            contact_search=os.environ.get("CALLSYNC_CONTACT_SEARCH", "few_numbers"),  # type: ignore[arg-type]
            hubspot_batch_size=int_from_environment("CALLSYNC_HUBSPOT_BATCH_SIZE", 100),
        ),
    },
)
