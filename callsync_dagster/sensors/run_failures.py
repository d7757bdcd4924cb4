"""The sensor that hands back the sessions of a failed sync run, so none stays `syncing`."""

from typing import Any

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
    run_status_sensor,
)

from callsync_dagster.environment import int_from_environment
from callsync_dagster.jobs import backfill_calls_by_day, sync_calls_to_hubspot, sync_conversations_to_hubspot
from callsync_dagster.resources.conversation_store import ConversationStore
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings


@run_failure_sensor(
    monitored_jobs=[sync_calls_to_hubspot, backfill_calls_by_day, sync_conversations_to_hubspot],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int_from_environment("CALLSYNC_SENSOR_INTERVAL_SECONDS", 30),
    description="Fires when a sync run fails (a crash, a killed worker that run monitoring noticed): fails the "
    "sessions it still holds as retryable, with the run's error, instead of waiting for their lease to expire.",
)
def release_sessions_of_failed_runs(
    context: RunFailureSensorContext, postgres: PostgresResource, settings: CallSyncSettings
) -> None:
    run_id = context.dagster_run.run_id
    error = context.failure_event.message or "no error message"
    release(postgres, settings, run_id, f"run {run_id} failed: {error[:500]}", context.log)


@run_status_sensor(
    run_status=DagsterRunStatus.CANCELED,
    monitored_jobs=[sync_calls_to_hubspot, backfill_calls_by_day, sync_conversations_to_hubspot],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int_from_environment("CALLSYNC_SENSOR_INTERVAL_SECONDS", 30),
    description="Fires when a sync run is cancelled: fails its remaining sessions and conversations as retryable.",
)
def release_sessions_of_cancelled_runs(
    context: RunStatusSensorContext, postgres: PostgresResource, settings: CallSyncSettings
) -> None:
    run_id = context.dagster_run.run_id
    release(postgres, settings, run_id, f"run {run_id} was cancelled", context.log)


def release(postgres: PostgresResource, settings: CallSyncSettings, run_id: str, reason: str, log: Any) -> None:
    released = postgres.release_claims_of_run(
        run_id, reason, settings.max_attempts, settings.retry_initial_delay_minutes, settings.retry_max_delay_minutes
    )
    conversations = ConversationStore(postgres).release_claims_of_run(
        run_id, reason, settings.max_attempts, settings.retry_initial_delay_minutes
    )
    if released or conversations:
        log.warning(
            "Run %s ended holding %d call sessions and %d conversations; they are retried later: %s",
            run_id,
            len(released),
            conversations,
            reason,
        )
