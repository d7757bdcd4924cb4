"""The run-failure sensor: a failed run's claimed sessions go back to the queue with the run's error."""

from collections.abc import Callable
from typing import Any

import psycopg
from dagster import DagsterInstance, ExecuteInProcessResult, build_run_status_sensor_context

from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from callsync_dagster.sensors.run_failures import release_sessions_of_failed_runs
from tests.conftest import session_row, sync_log


def test_failed_run_releases_its_sessions(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    postgres: PostgresResource,
    dagster_instance: DagsterInstance,
) -> None:
    # A run that fails (here on bad config), whose claims stand in for those of a worker that died.
    failed = run_sync_job(session_ids=["not-a-uuid"])
    assert not failed.success
    claimed_session = insert_session()
    other = insert_session()
    postgres.claim_sessions_by_id(failed.run_id, [claimed_session], lease_minutes=30)
    failure_event = failed.get_run_failure_event()
    run = dagster_instance.get_run_by_id(failed.run_id)
    assert run is not None

    # Resources go through the context, as the daemon passes them; their lifecycle needs the `with`.
    with build_run_status_sensor_context(
        sensor_name=release_sessions_of_failed_runs.name,
        dagster_event=failure_event,
        dagster_instance=dagster_instance,
        dagster_run=run,
        resources={"postgres": postgres, "settings": CallSyncSettings()},
    ) as context:
        release_sessions_of_failed_runs(context.for_run_failure())

    row = session_row(db, claimed_session)
    assert row["sync_status"] == "failed"
    assert row["sync_reason_code"] == "run_failed"
    assert failed.run_id in row["sync_reason"]
    assert row["sync_claim_run_id"] is None
    assert row["sync_next_attempt_at"] is not None
    assert [entry["action"] for entry in sync_log(db, claimed_session)] == ["run_failed"]
    assert session_row(db, other)["sync_status"] == "pending"


def test_session_that_kills_its_runs_is_parked(
    insert_session: Callable[..., str], db: psycopg.Connection[Any], postgres: PostgresResource
) -> None:
    poison = insert_session()
    settings = CallSyncSettings(max_attempts=3)

    for attempt in range(1, 5):
        # Let the backoff pass; a parked session has no next attempt to bring forward.
        db.execute(
            "UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second'"
            " WHERE id = %s AND (sync_status = 'pending' OR sync_next_attempt_at IS NOT NULL)",
            (poison,),
        )
        claimed = postgres.claim_due_sessions(f"run-{attempt}", 10, 0, 30, settings.max_attempts)
        if not claimed:
            break
        postgres.release_claims_of_run(
            f"run-{attempt}", "run died", settings.max_attempts, settings.retry_initial_delay_minutes, 360
        )

    row = session_row(db, poison)
    assert (row["sync_status"], row["sync_attempts"], row["sync_next_attempt_at"]) == ("failed", 3, None)
    assert "no attempts left" in row["sync_reason"]
