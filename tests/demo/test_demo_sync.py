"""The whole demo dataset through the real job: every data-contract case ends as the seed expects."""

from collections.abc import Callable
from typing import Any

import psycopg
from dagster import DagsterInstance, ExecuteInProcessResult

from callsync_dagster.demo.conversations import build_demo_conversations, insert_demo_conversations
from callsync_dagster.demo.seed_data import build_demo_dataset, insert_demo_dataset
from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.jobs import sync_conversations_to_hubspot
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from tests.conftest import seed_standin, standin_objects


def test_demo_dataset_outcomes(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    database_url: str,
    db_schema: str,
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    dataset = build_demo_dataset()
    with psycopg.connect(database_url) as conn:
        insert_demo_dataset(conn, db_schema, dataset)
    seed_standin(standin, dataset.standin_seed)

    result = run_sync_job(max_batch_size=1000)

    assert result.success
    rows = {
        str(row["id"]): row
        for row in db.execute(
            "SELECT id, sync_status, sync_reason_code, hubspot_contact_id FROM telavox_call_sessions"
        ).fetchall()
    }
    outcomes = {
        session_id: ("not_eligible" if row["sync_status"] == "pending" else row["sync_status"], row["sync_reason_code"])
        for session_id, row in rows.items()
    }
    # A not-eligible session's expectation carries the reason it waits, but the database stores only pending.
    wrong = {
        dataset.categories[session_id]: (expected, outcomes[session_id])
        for session_id, expected in dataset.expected.items()
        if outcomes[session_id] != (expected if expected[0] != "not_eligible" else ("not_eligible", None))
    }
    assert wrong == {}
    wrong_contacts = {
        dataset.categories[session_id]: (contact_id, rows[session_id]["hubspot_contact_id"])
        for session_id, contact_id in dataset.expected_contact_ids.items()
        if rows[session_id]["hubspot_contact_id"] != contact_id
    }
    assert wrong_contacts == {}
    synced = sum(1 for status, _ in dataset.expected.values() if status == "synced")
    assert len(standin_objects(standin, "calls")) == synced


def test_demo_conversations_outcomes(
    database_url: str,
    db_schema: str,
    db: psycopg.Connection[Any],
    standin: StandinServer,
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
) -> None:
    demo = build_demo_conversations()
    with psycopg.connect(database_url) as conn:
        insert_demo_conversations(conn, db_schema, demo)

    def run() -> ExecuteInProcessResult:
        return sync_conversations_to_hubspot.execute_in_process(
            resources={"postgres": postgres, "hubspot": hubspot, "settings": CallSyncSettings()},
            instance=dagster_instance,
            raise_on_error=False,
        )

    assert run().success
    assert run().success  # the rerun finds nothing due and creates nothing

    expected = {conversation.conversation_id: conversation.expected_status for conversation in demo.conversations}
    actual = {
        row["conversation_id"]: row["sync_status"]
        for row in db.execute("SELECT conversation_id, sync_status FROM conversations").fetchall()
    }
    assert actual == expected
    counts = demo.expected_counts()
    assert [len(standin_objects(standin, kind)) for kind in ("deals", "notes", "tasks")] == [
        counts["deals"],
        counts["notes"],
        counts["tasks"],
    ]
