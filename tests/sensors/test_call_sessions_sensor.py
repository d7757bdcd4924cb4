from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, SkipReason, build_sensor_context, instance_for_test
from dagster._core.utils import make_new_run_id

from callsync_dagster.core.models import CallSession
from callsync_dagster.jobs import sync_calls_to_hubspot
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from callsync_dagster.sensors.call_sessions import call_sessions_due_sensor, call_sync_run_key


def _evaluate(instance: DagsterInstance, postgres: PostgresResource, settings: CallSyncSettings) -> Any:
    with build_sensor_context(instance=instance, resources={"postgres": postgres, "settings": settings}) as context:
        return call_sessions_due_sensor.evaluate_tick(context)


def test_nothing_due_skips_with_counts(
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    settings: CallSyncSettings,
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
) -> None:
    insert_session(transcription_status="pending", ended_at=datetime.now(UTC) - timedelta(minutes=5))
    retrying = insert_session()
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_next_attempt_at = now() + interval '1 hour'"
        " WHERE id = %s",
        (retrying,),
    )

    result = _evaluate(dagster_instance, postgres, settings)

    assert result.run_requests == []
    assert result.skip_message == (
        "No call sessions are due. Waiting: 1 for a transcript, 1 for a retry, 0 claimed by running runs."
    )


def test_due_sessions_requested(
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    settings: CallSyncSettings,
    insert_session: Callable[..., str],
) -> None:
    due = {insert_session() for _ in range(3)}

    result = _evaluate(dagster_instance, postgres, settings)

    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert set(request.run_config["ops"]["fetch"]["config"]["session_ids"]) == due
    assert request.run_key.startswith("calls-")


def test_request_bounded_per_run(
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    settings: CallSyncSettings,
    db: psycopg.Connection[Any],
) -> None:
    db.execute(
        "INSERT INTO telavox_call_sessions (telavox_call_id, direction, from_number, ended_at, transcription_status)"
        " SELECT 'bulk-' || n, 'INBOUND', '0701234567', now() - interval '1 hour', 'completed'"
        " FROM generate_series(1, 150) AS n"
    )

    result = _evaluate(dagster_instance, postgres, settings)

    session_ids = result.run_requests[0].run_config["ops"]["fetch"]["config"]["session_ids"]
    assert len(session_ids) == settings.sensor_max_sessions_per_run


def test_claimed_sessions_not_requested(
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    settings: CallSyncSettings,
    insert_session: Callable[..., str],
) -> None:
    insert_session()
    postgres.claim_due_sessions(
        "run-a", 10, settings.transcript_wait_minutes, settings.claim_lease_minutes, settings.max_attempts
    )

    result = _evaluate(dagster_instance, postgres, settings)

    assert result.run_requests == []
    assert "1 claimed by running runs" in result.skip_message


def _session(attempts: int, updated_at: str = "2026-12-04T10:00:00+00:00") -> CallSession:
    return CallSession.model_validate(
        {
            "id": "00000000-0000-0000-0000-000000000001",
            "telavox_call_id": "A",
            "sync_attempts": attempts,
            "updated_at": updated_at,
        }
    )


def test_run_key_stable_while_waiting() -> None:
    now = 1_000_000.0
    assert call_sync_run_key([_session(0)], 30, now) == call_sync_run_key([_session(0)], 30, now + 60)


def test_run_key_changes_on_retry() -> None:
    now = 1_000_000.0
    assert call_sync_run_key([_session(0)], 30, now) != call_sync_run_key([_session(1)], 30, now)


def test_run_key_changes_on_row_update() -> None:
    now = 1_000_000.0
    rewritten = _session(0, updated_at="2026-12-04T10:05:00+00:00")
    assert call_sync_run_key([_session(0)], 30, now) != call_sync_run_key([rewritten], 30, now)


def test_run_key_changes_after_lease() -> None:
    now = 1_000_000.0
    assert call_sync_run_key([_session(0)], 30, now) != call_sync_run_key([_session(0)], 30, now + 31 * 60)


def test_sensor_never_calls_hubspot() -> None:
    assert set(call_sessions_due_sensor.required_resource_keys) == {"postgres", "settings"}


def test_skip_reason_type(
    dagster_instance: DagsterInstance, postgres: PostgresResource, settings: CallSyncSettings
) -> None:
    with build_sensor_context(instance=dagster_instance, resources={"postgres": postgres, "settings": settings}) as ctx:
        raw = call_sessions_due_sensor(ctx)
    assert isinstance(raw, SkipReason)


def _insert_bulk(db: psycopg.Connection[Any], count: int, portal: str | None = None) -> None:
    db.execute(
        "INSERT INTO telavox_call_sessions"
        " (telavox_call_id, direction, from_number, ended_at, transcription_status, hubspot_portal_id)"
        " SELECT 'bulk-' || %s::text || n, 'INBOUND', '0701234567', now() - interval '1 hour', 'completed', %s"
        " FROM generate_series(1, %s) AS n",
        (portal or "none", portal, count),
    )


def test_several_runs_per_tick_up_to_limit(postgres: PostgresResource, db: psycopg.Connection[Any]) -> None:
    _insert_bulk(db, 650)
    settings = CallSyncSettings(sensor_max_sessions_per_run=100, sensor_max_runs_in_flight=4)

    with instance_for_test() as instance:
        result = _evaluate(instance, postgres, settings)

    sizes = [len(request.run_config["ops"]["fetch"]["config"]["session_ids"]) for request in result.run_requests]
    assert sizes == [100, 100, 100, 100]
    all_ids = [
        session_id
        for request in result.run_requests
        for session_id in request.run_config["ops"]["fetch"]["config"]["session_ids"]
    ]
    assert len(set(all_ids)) == 400
    assert len({request.run_key for request in result.run_requests}) == 4


def test_runs_in_flight_hold_back_tick(postgres: PostgresResource, db: psycopg.Connection[Any]) -> None:
    _insert_bulk(db, 300)
    settings = CallSyncSettings(sensor_max_runs_in_flight=3)

    with instance_for_test() as instance:
        # Queued runs need a code-location origin to be stored; NOT_STARTED counts the same way.
        for status in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTED):
            instance.add_run(
                DagsterRun(
                    job_name=sync_calls_to_hubspot.name,
                    run_id=make_new_run_id(),
                    status=status,
                    tags={"callsync/trigger": "sensor"},
                )
            )
        one_free = _evaluate(instance, postgres, settings)
        instance.add_run(
            DagsterRun(
                job_name=sync_calls_to_hubspot.name,
                run_id=make_new_run_id(),
                status=DagsterRunStatus.STARTING,
                tags={"callsync/trigger": "sensor"},
            )
        )
        none_free = _evaluate(instance, postgres, settings)

    assert len(one_free.run_requests) == 1
    assert not none_free.run_requests
    assert "3 sync runs are waiting or running" in str(none_free.skip_message)


def test_one_portal_per_run(postgres: PostgresResource, db: psycopg.Connection[Any]) -> None:
    _insert_bulk(db, 3, portal="1111")
    _insert_bulk(db, 2, portal="2222")
    _insert_bulk(db, 1)

    with instance_for_test() as instance:
        result = _evaluate(instance, postgres, CallSyncSettings())

    portals = sorted(
        (request.tags["callsync/portal"], len(request.run_config["ops"]["fetch"]["config"]["session_ids"]))
        for request in result.run_requests
    )
    assert portals == [("1111", 3), ("2222", 2), ("default", 1)]


def test_failing_batch_does_not_starve_others(postgres: PostgresResource, db: psycopg.Connection[Any]) -> None:
    # A hundred old sessions that fail every time, then five new ones behind them.
    _insert_bulk(db, 100, portal="1111")
    db.execute("UPDATE telavox_call_sessions SET ended_at = now() - interval '2 days'")
    _insert_bulk(db, 5, portal="2222")
    settings = CallSyncSettings(sensor_max_sessions_per_run=100, sensor_max_runs_in_flight=1)

    with instance_for_test() as instance:
        first = _evaluate(instance, postgres, settings)
        # Their run fails them all as retryable; backoff moves their next attempt out.
        db.execute(
            "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_attempts = 1,"
            " sync_next_attempt_at = now() + interval '5 minutes' WHERE hubspot_portal_id = '1111'"
        )
        second = _evaluate(instance, postgres, settings)

    assert [request.tags["callsync/portal"] for request in first.run_requests] == ["1111"]
    assert [request.tags["callsync/portal"] for request in second.run_requests] == ["2222"]
    assert len(second.run_requests[0].run_config["ops"]["fetch"]["config"]["session_ids"]) == 5
