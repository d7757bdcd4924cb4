"""The sensor that launches a sync run when call sessions become due."""

import time

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from callsync_dagster.core.models import CallSession
from callsync_dagster.environment import int_from_environment
from callsync_dagster.jobs import sync_calls_to_hubspot
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from callsync_dagster.sensors.run_keys import run_key


def call_sync_run_key(sessions: list[CallSession], lease_minutes: int, now: float) -> str:
    """Build the run key of a batch of sessions (see run_keys.run_key).

    The runs claim with `only_due`, so a second run for the same sessions takes only those still due and
    never retries one early.
    """
    fingerprints = [
        f"{session.id}:{session.sync_attempts}:{session.updated_at.isoformat() if session.updated_at else ''}"
        for session in sessions
    ]
    return run_key("calls", fingerprints, lease_minutes, now)


# Runs of this sensor that are waiting or running; another tick adds runs only up to the limit.
_IN_FLIGHT_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@sensor(
    job=sync_calls_to_hubspot,
    # Dagster's default; tests and small deployments can tick sooner.
    minimum_interval_seconds=int_from_environment("CALLSYNC_SENSOR_INTERVAL_SECONDS", 30),
    default_status=DefaultSensorStatus.RUNNING,
    description="Fires when finished call sessions are due to sync: one run per portal and batch of up to "
    "sensor_max_sessions_per_run (100) sessions, with at most sensor_max_runs_in_flight (4) runs waiting or running.",
)
def call_sessions_due_sensor(
    context: SensorEvaluationContext, postgres: PostgresResource, settings: CallSyncSettings
) -> SensorResult | SkipReason:
    # Reads the database and Dagster's run records only: HubSpot calls belong in runs, where they are retried,
    # rate limited and logged.
    in_flight = context.instance.get_runs_count(
        RunsFilter(
            job_name=sync_calls_to_hubspot.name, statuses=_IN_FLIGHT_STATUSES, tags={"callsync/trigger": "sensor"}
        )
    )
    free_slots = settings.sensor_max_runs_in_flight - in_flight
    if free_slots <= 0:
        return SkipReason(f"{in_flight} sync runs are waiting or running, the most allowed; waiting for them.")

    due = postgres.find_due_sessions(
        settings.sensor_max_sessions_per_run * free_slots, settings.transcript_wait_minutes
    )
    if not due.sessions:
        return SkipReason(
            "No call sessions are due. Waiting: "
            f"{due.waiting_for_transcript} for a transcript, {due.waiting_for_retry} for a retry, "
            f"{due.claimed} claimed by running runs."
        )

    now = time.time()
    run_requests = []
    for portal, sessions in batches_by_portal(due.sessions, settings.sensor_max_sessions_per_run)[:free_slots]:
        run_key = call_sync_run_key(sessions, settings.claim_lease_minutes, now)
        session_ids = [str(session.id) for session in sessions]
        context.log.info(
            "Requesting a sync run for %d due call sessions of portal %s (run key %s)", len(sessions), portal, run_key
        )
        run_requests.append(
            RunRequest(
                run_key=run_key,
                run_config={"ops": {"fetch": {"config": {"session_ids": session_ids, "only_due": True}}}},
                tags={"callsync/trigger": "sensor", "callsync/sessions": str(len(sessions)), "callsync/portal": portal},
            )
        )
    return SensorResult(run_requests=run_requests)


def batches_by_portal(sessions: list[CallSession], batch_size: int) -> list[tuple[str, list[CallSession]]]:
    """Split due sessions into batches of one portal each, the batch holding the oldest due session first.

    One portal per run lets the instance limit concurrent runs per portal (tag callsync/portal). Sessions
    without a portal id are tagged "default"; the rate limits that runs share in the database hold either way.
    """
    by_portal: dict[str, list[CallSession]] = {}
    for session in sessions:
        by_portal.setdefault((session.hubspot_portal_id or "").strip() or "default", []).append(session)
    batches = [
        (portal, portal_sessions[start : start + batch_size])
        for portal, portal_sessions in by_portal.items()
        for start in range(0, len(portal_sessions), batch_size)
    ]
    # `sessions` comes oldest due first, so ordering batches by their first session's position keeps that order.
    position = {session.id: index for index, session in enumerate(sessions)}
    return sorted(batches, key=lambda batch: position[batch[1][0].id])
