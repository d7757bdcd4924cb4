"""The sensors, the run queue and run workers under a real `dagster-daemon run`, with Postgres instance storage.

Each test gets its own Dagster database, so the sensors' first ticks come as soon as the daemon has loaded the
code location. CALLSYNC_SENSOR_INTERVAL_SECONDS=1 lets the due-sessions sensor tick on every pass of the
daemon's sensor loop, which waits at least 5 s between passes. Where a scenario needs time to pass (a retry
delay, HubSpot's search lag, a claim's lease), the test moves the session's timestamps into the past instead.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import TickStatus
from psycopg import sql
from psycopg.conninfo import make_conninfo

from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.jobs import SYNC_CALLS_JOB_NAME
from tests.conftest import STANDIN_TOKEN, session_row, standin_objects, sync_log
from tests.daemon.harness import DaemonProcess, psycopg2_url, write_instance_config

SENSOR_NAME = "call_sessions_due_sensor"
SENSOR_INTERVAL_SECONDS = 1
CALL_CREATE_PATH = "/crm/v3/objects/calls/batch/create"
# With the default run launcher, run monitoring can only fail a run that outlives this runtime. It is the
# backstop for a run worker whose death nothing else records.
MAX_RUNTIME_SECONDS = 45
# Bounds each wait. On a 2-core machine the daemon loaded the code location, ticked, dequeued and finished a
# run within about 8 s, and the run-failure sensor (default interval 30 s) acted 35 s after its first tick.
STEP_TIMEOUT_SECONDS = 60
FINISHED_STATUSES = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def dagster_home(tmp_path: Path, database_server_url: str) -> Iterator[Path]:
    """A DAGSTER_HOME whose instance keeps runs, events and sensor state in a database dropped afterwards."""
    name = f"callsync_dagster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    home = tmp_path / "dagster_home"
    home.mkdir()
    write_instance_config(home, psycopg2_url(make_conninfo(database_server_url, dbname=name)), MAX_RUNTIME_SECONDS)
    try:
        yield home
    finally:
        with psycopg.connect(database_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[DagsterInstance]:
    """The daemon's instance as the test reads it. Opening it before the daemon starts creates Dagster's tables."""
    with DagsterInstance.from_config(str(dagster_home)) as opened:
        yield opened


@pytest.fixture
def start_daemon(
    dagster_home: Path,
    instance: DagsterInstance,
    database_url: str,
    db_schema: str,
    standin: StandinServer,
    tmp_path: Path,
) -> Iterator[Callable[[], DaemonProcess]]:
    """Return a function that starts the daemon on the test's schema and the stand-in. Teardown stops them all."""
    started: list[DaemonProcess] = []
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "CALLSYNC_DATABASE_URL": database_url,
        "CALLSYNC_DB_SCHEMA": db_schema,
        "HUBSPOT_ACCESS_TOKEN": STANDIN_TOKEN,
        "HUBSPOT_BASE_URL": standin.url,
        "CALLSYNC_SENSOR_INTERVAL_SECONDS": str(SENSOR_INTERVAL_SECONDS),
    }

    def start() -> DaemonProcess:
        daemon = DaemonProcess(environment, tmp_path / "dagster-daemon.log")
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


# Reading the instance and the database


def sensor_runs(instance: DagsterInstance) -> list[DagsterRun]:
    """Return the sync runs the sensor requested, oldest first."""
    records = instance.get_run_records(
        filters=RunsFilter(job_name=SYNC_CALLS_JOB_NAME, tags={"dagster/sensor_name": SENSOR_NAME}),
        ascending=True,
    )
    return [record.dagster_run for record in records]


def finished_sensor_runs(instance: DagsterInstance, count: int) -> list[DagsterRun] | None:
    """Return the sensor's runs once there are `count` and all have finished, else None."""
    runs = sensor_runs(instance)
    if len(runs) == count and all(run.status in FINISHED_STATUSES for run in runs):
        return runs
    return None


def finished_run(instance: DagsterInstance, run_id: str) -> DagsterRun | None:
    """Return the run once it has finished, else None."""
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.status in FINISHED_STATUSES else None


def fetch_config(run: DagsterRun) -> dict[str, Any]:
    """Return the run's `ops.fetch.config`, where the sensor names the sessions it requested."""
    ops: Any = run.run_config["ops"]
    return dict(ops["fetch"]["config"])


def sensor_ticks_after(instance: DagsterInstance, timestamp: float) -> list[Any]:
    """Return the sensor's finished ticks that started after `timestamp` (seconds since the epoch), newest first.

    A tick still being evaluated has no outcome yet, so it is left out.
    """
    for state in instance.all_instigator_state():
        if state.instigator_name == SENSOR_NAME:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=timestamp)
            return [tick for tick in ticks if tick.status != TickStatus.STARTED]
    return []


def run_worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """Return the process id the run worker logged when it started, or None before it has."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.engine_event_data is None:
            continue
        pid = event.engine_event_data.metadata.get("pid")
        if pid is not None:
            return int(str(pid.value))
    return None


def row_when(
    db: psycopg.Connection[Any], session_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    row = session_row(db, session_id)
    return row if condition(row) else None


def add_fault(standin: StandinServer, fault: dict[str, Any]) -> None:
    httpx.post(f"{standin.url}/_standin/faults", json=fault).raise_for_status()


def pending_faults(standin: StandinServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{standin.url}/_standin/faults")
    response.raise_for_status()
    faults: list[dict[str, Any]] = response.json()["faults"]
    return faults


# Scenarios


def test_due_sessions_synced_by_daemon(
    start_daemon: Callable[[], DaemonProcess],
    instance: DagsterInstance,
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_ids = [insert_session(from_number=f"070-300 00 0{index}") for index in range(3)]

    daemon = start_daemon()
    runs = daemon.wait_until(lambda: finished_sensor_runs(instance, 1), STEP_TIMEOUT_SECONDS, "one finished sensor run")
    run = runs[0]
    # Wait for one more tick after the run. Nothing is due, so the sensor must skip instead of requesting a run.
    run_ended = instance.get_run_record_by_id(run.run_id)
    assert run_ended is not None
    assert run_ended.end_time is not None
    later_ticks = daemon.wait_until(
        lambda: sensor_ticks_after(instance, run_ended.end_time or 0.0),
        STEP_TIMEOUT_SECONDS,
        "a sensor tick after the run ended",
    )

    assert run.status == DagsterRunStatus.SUCCESS, daemon.log_tail()
    assert run.tags["dagster/run_key"].startswith("calls-")
    assert sorted(fetch_config(run)["session_ids"]) == sorted(session_ids)
    assert fetch_config(run)["only_due"] is True
    assert later_ticks[0].skip_reason is not None
    assert later_ticks[0].skip_reason.startswith("No call sessions are due.")
    assert len(sensor_runs(instance)) == 1

    calls = standin_objects(standin, "calls")
    rows = [session_row(db, session_id) for session_id in session_ids]
    assert sorted(call["properties"]["hs_call_external_id"] for call in calls) == sorted(
        row["telavox_call_id"] for row in rows
    )
    assert {row["hubspot_engagement_id"] for row in rows} == {call["id"] for call in calls}
    for row in rows:
        assert row["sync_status"] == "synced"
        assert row["synced_at"] is not None
        assert row["sync_claim_run_id"] is None
        created = [entry for entry in sync_log(db, str(row["id"])) if entry["action"] == "call_created"]
        assert [entry["run_id"] for entry in created] == [run.run_id]


def test_failed_session_retried_new_run_key(
    start_daemon: Callable[[], DaemonProcess],
    instance: DagsterInstance,
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session()
    # callsync does not resend a create that got a 500 response, because HubSpot may have applied it. The
    # session fails as retryable and waits out HubSpot's search lag and the retry delay.
    add_fault(standin, {"status": 500, "count": 1, "path": CALL_CREATE_PATH, "method": "POST"})

    daemon = start_daemon()
    first_runs = daemon.wait_until(
        lambda: finished_sensor_runs(instance, 1), STEP_TIMEOUT_SECONDS, "the first sensor run to finish"
    )
    failed = session_row(db, session_id)

    assert first_runs[0].status == DagsterRunStatus.SUCCESS, daemon.log_tail()
    assert failed["sync_status"] == "failed"
    assert failed["sync_reason_code"] == "hubspot_call_create_unconfirmed"
    assert failed["sync_next_attempt_at"] is not None
    assert failed["hubspot_call_requested_at"] is not None
    assert failed["sync_attempts"] == 1
    assert standin_objects(standin, "calls") == []

    # Let the retry delay and the search lag pass at once.
    db.execute(
        "UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second',"
        " hubspot_call_requested_at = now() - interval '10 minutes' WHERE id = %s",
        (session_id,),
    )
    runs = daemon.wait_until(
        lambda: finished_sensor_runs(instance, 2), STEP_TIMEOUT_SECONDS, "the retry's sensor run to finish"
    )

    assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS, DagsterRunStatus.SUCCESS]
    assert runs[0].tags["dagster/run_key"] != runs[1].tags["dagster/run_key"]
    calls = standin_objects(standin, "calls")
    assert len(calls) == 1
    row = session_row(db, session_id)
    assert row["sync_status"] == "synced"
    assert row["hubspot_engagement_id"] == calls[0]["id"]
    assert row["sync_attempts"] == 2
    actions = [(entry["run_id"], entry["action"]) for entry in sync_log(db, session_id)]
    assert (runs[0].run_id, "failed") in actions
    assert (runs[1].run_id, "call_created") in actions


def test_killed_run_sessions_recovered(
    start_daemon: Callable[[], DaemonProcess],
    instance: DagsterInstance,
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_ids = [insert_session(from_number="070-400 00 01"), insert_session(from_number="070-400 00 02")]
    # Hold the CALL create so the run worker is mid-request when it is killed. The stand-in carries the
    # request out once the client's connection closes, as HubSpot may after a client dies.
    add_fault(standin, {"status": None, "count": 1, "path": CALL_CREATE_PATH, "method": "POST", "delay_seconds": 60})

    daemon = start_daemon()
    first_run = daemon.wait_until(
        lambda: next(iter(sensor_runs(instance)), None), STEP_TIMEOUT_SECONDS, "the first sensor run"
    )
    daemon.wait_until(lambda: not pending_faults(standin), STEP_TIMEOUT_SECONDS, "the CALL create to be held")
    pid = daemon.wait_until(
        lambda: run_worker_pid(instance, first_run.run_id), STEP_TIMEOUT_SECONDS, "the run worker's process id"
    )
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    killed = daemon.wait_until(
        lambda: finished_run(instance, first_run.run_id), MAX_RUNTIME_SECONDS + 15, "the killed run to finish"
    )
    marked_failed_after = time.monotonic() - killed_at
    # The run-failure sensor hands back both sessions the dead run held, long before their lease expires.
    released = [
        daemon.wait_until(
            partial(row_when, db, session_id, lambda row: row["sync_status"] != "syncing"),
            STEP_TIMEOUT_SECONDS,
            "the run-failure sensor to release the sessions",
        )
        for session_id in session_ids
    ]

    assert killed.status == DagsterRunStatus.FAILURE
    # Dagster 1.13's code server checks every 0.5 s that the run workers it started are alive
    # (`_check_for_orphaned_runs` in dagster/_grpc/server.py), so the run fails long before its max runtime.
    assert marked_failed_after < 10, f"the killed run was marked failed {marked_failed_after:.1f} s after the kill"
    for row in released:
        assert row["sync_status"] == "failed"
        assert row["sync_reason_code"] == "run_failed"
        assert row["sync_claim_run_id"] is None
        assert row["sync_next_attempt_at"] is not None

    # Let the retry delay pass; the next sensor run syncs both.
    db.execute(
        "UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second' WHERE id = ANY(%s::uuid[])",
        (session_ids,),
    )
    runs = daemon.wait_until(lambda: finished_sensor_runs(instance, 2), STEP_TIMEOUT_SECONDS, "the retry run to finish")

    assert [run.status for run in runs] == [DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS], daemon.log_tail()
    assert runs[0].tags["dagster/run_key"] != runs[1].tags["dagster/run_key"]
    # The create in flight at the kill made both CALLs, and the retry found them instead of creating more.
    calls = standin_objects(standin, "calls")
    assert len(calls) == 2
    rows = [session_row(db, session_id) for session_id in session_ids]
    assert {row["hubspot_engagement_id"] for row in rows} == {call["id"] for call in calls}
    assert {row["sync_status"] for row in rows} == {"synced"}
    for session_id in session_ids:
        actions = [(entry["run_id"], entry["action"]) for entry in sync_log(db, session_id)]
        assert (first_run.run_id, "run_failed") in actions
        assert (runs[1].run_id, "call_found_existing") in actions
