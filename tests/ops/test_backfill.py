"""The daily backfill job: one day of calls synced, its CALLs reconciled with HubSpot, its counts recorded."""

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult

from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.jobs import backfill_calls_by_day
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from tests.conftest import session_row, standin_objects, sync_log


def started(moment: str) -> dict[str, datetime]:
    start = datetime.fromisoformat(moment).astimezone(UTC)
    return {"started_at": start, "answered_at": start + timedelta(seconds=5), "ended_at": start + timedelta(minutes=3)}


def run_day(
    day: str,
    instance: DagsterInstance,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    requeue_deleted: bool = True,
) -> ExecuteInProcessResult:
    return backfill_calls_by_day.execute_in_process(
        partition_key=day,
        run_config={"ops": {"reconcile_day": {"config": {"requeue_deleted": requeue_deleted}}}},
        resources={"postgres": postgres, "hubspot": hubspot, "settings": CallSyncSettings()},
        instance=instance,
        raise_on_error=False,
    )


def test_backfill_syncs_only_its_day(
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    standin: StandinServer,
) -> None:
    # 00:30 on 21 November in Stockholm is still 20 November in UTC: it belongs to the 21st.
    on_day = [
        insert_session(from_number="070-100 00 01", **started("2026-11-21T00:30:00+01:00")),
        insert_session(from_number="070-100 00 02", **started("2026-11-21T23:50:00+01:00")),
    ]
    day_before = insert_session(from_number="070-100 00 03", **started("2026-11-20T23:59:00+01:00"))
    day_after = insert_session(from_number="070-100 00 04", **started("2026-11-22T00:00:00+01:00"))

    result = run_day("2026-11-21", dagster_instance, postgres, hubspot)

    assert result.success
    assert {session_row(db, session_id)["sync_status"] for session_id in on_day} == {"synced"}
    assert session_row(db, day_before)["sync_status"] == "pending"
    assert session_row(db, day_after)["sync_status"] == "pending"
    counts = result.output_for_node("reconcile_day")
    assert (counts["sessions"], counts["ended"], counts["eligible"], counts["synced"]) == (2, 2, 2, 2)
    assert counts["run_synced"] == 2
    assert len(standin_objects(standin, "calls")) == 2


def test_backfill_day_of_clock_change(
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
) -> None:
    # 29 March 2026 in Stockholm has 23 hours: 00:00+01:00 to 24:00+02:00.
    first_hour = insert_session(from_number="070-100 00 05", **started("2026-03-29T00:10:00+01:00"))
    last_hour = insert_session(from_number="070-100 00 06", **started("2026-03-29T23:50:00+02:00"))
    next_day = insert_session(from_number="070-100 00 07", **started("2026-03-30T00:10:00+02:00"))

    assert run_day("2026-03-29", dagster_instance, postgres, hubspot).success

    assert session_row(db, first_hour)["sync_status"] == "synced"
    assert session_row(db, last_hour)["sync_status"] == "synced"
    assert session_row(db, next_day)["sync_status"] == "pending"


def test_backfill_requeues_deleted_call(
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
) -> None:
    existing_call_session = insert_session(from_number="070-100 00 08", **started("2026-11-23T10:00:00+01:00"))
    assert run_day("2026-11-23", dagster_instance, postgres, hubspot).success
    # A CALL id that HubSpot no longer has, as after someone deleted the CALL.
    deleted_call_session = insert_session(
        from_number="070-100 00 09", hubspot_engagement_id="987654", **started("2026-11-23T11:00:00+01:00")
    )
    db.execute("UPDATE telavox_call_sessions SET sync_status = 'synced' WHERE id = %s", (deleted_call_session,))

    result = run_day("2026-11-23", dagster_instance, postgres, hubspot)

    assert result.success
    counts = result.output_for_node("reconcile_day")
    assert (counts["calls_checked"], counts["calls_deleted"], counts["requeued"]) == (2, 1, 1)
    row = session_row(db, deleted_call_session)
    assert (row["sync_status"], row["hubspot_engagement_id"]) == ("pending", None)
    assert [entry["action"] for entry in sync_log(db, deleted_call_session)] == ["call_deleted_requeued"]
    assert session_row(db, existing_call_session)["sync_status"] == "synced"


def test_backfill_reports_deleted_without_requeue(
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
) -> None:
    deleted_call_session = insert_session(hubspot_engagement_id="987654", **started("2026-11-24T11:00:00+01:00"))
    db.execute("UPDATE telavox_call_sessions SET sync_status = 'synced' WHERE id = %s", (deleted_call_session,))

    result = run_day("2026-11-24", dagster_instance, postgres, hubspot, requeue_deleted=False)

    counts = result.output_for_node("reconcile_day")
    assert (counts["calls_deleted"], counts["requeued"]) == (1, 0)
    assert session_row(db, deleted_call_session)["sync_status"] == "synced"
    output = next(
        event
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_OUTPUT and event.step_key == "reconcile_day"
    )
    day_table = output.step_output_data.metadata["day_counts"].value
    assert re.search(r"\| calls_deleted +\| +1 \|", str(day_table))
