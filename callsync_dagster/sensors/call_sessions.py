"""The sensor that launches a sync run when call sessions become due."""

import hashlib
import time

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from callsync_dagster.core.models import CallSession
from callsync_dagster.environment import int_from_environment
from callsync_dagster.jobs import sync_calls_to_hubspot
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings


def call_sync_run_key(sessions: list[CallSession], lease_minutes: int, now: float) -> str:
    """Build a run key that is stable while the same sessions wait, and changes when they need another run.

    It covers each session's id, attempt count and `updated_at`: a claim or an outcome changes them, so a
    retry gets a new key, and so does a row the application rewrote. It also covers the current lease
    period, because Dagster never relaunches a key it has seen and a run that died before it claimed
    anything must not block its sessions for ever. The runs claim with `only_due`, so a second run for the
    same sessions takes only those still due and never retries one early.
    """
    lease_period = int(now // (lease_minutes * 60))
    fingerprint = ",".join(
        f"{session.id}:{session.sync_attempts}:{session.updated_at.isoformat() if session.updated_at else ''}"
        for session in sorted(sessions, key=lambda s: str(s.id))
    )
    digest = hashlib.sha256(f"{fingerprint}|{lease_period}".encode()).hexdigest()[:24]
    return f"calls-{digest}"


@sensor(
    job=sync_calls_to_hubspot,
    # Dagster's default; tests and small deployments can tick sooner.
    minimum_interval_seconds=int_from_environment("CALLSYNC_SENSOR_INTERVAL_SECONDS", 30),
    default_status=DefaultSensorStatus.RUNNING,
    description="Fires when finished call sessions are due to sync; one run per batch of up to "
    "sensor_max_sessions_per_run (default 100) sessions.",
)
def call_sessions_due_sensor(
    context: SensorEvaluationContext, postgres: PostgresResource, settings: CallSyncSettings
) -> SensorResult | SkipReason:
    # Reads the database only: HubSpot calls belong in runs, where they are retried, rate limited and logged.
    due = postgres.find_due_sessions(settings.sensor_max_sessions_per_run, settings.transcript_wait_minutes)
    if not due.sessions:
        return SkipReason(
            "No call sessions are due. Waiting: "
            f"{due.waiting_for_transcript} for a transcript, {due.waiting_for_retry} for a retry, "
            f"{due.claimed} claimed by running runs."
        )

    session_ids = [str(session.id) for session in due.sessions]
    run_key = call_sync_run_key(due.sessions, settings.claim_lease_minutes, time.time())
    context.log.info("Requesting a sync run for %d due call sessions (run key %s)", len(session_ids), run_key)
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=run_key,
                run_config={"ops": {"fetch": {"config": {"session_ids": session_ids, "only_due": True}}}},
                tags={"callsync/trigger": "sensor", "callsync/sessions": str(len(session_ids))},
            )
        ]
    )
