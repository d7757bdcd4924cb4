"""The conversation workflow end to end: real PostgreSQL, the stand-in over HTTP, a real Dagster instance."""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult
from psycopg.types.json import Jsonb

from callsync_dagster.core.conversations import SyncType, conversation_marker
from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.jobs import sync_conversations_to_hubspot
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from tests.conftest import seed_standin, standin_objects

TURNS = [
    {
        "role": "agent",
        "message": "Hej, du har kommit till Solkraft. Vad kan jag hjälpa till med?",
        "time_in_call_secs": 0,
    },
    {"role": "user", "message": "Jag vill ha en offert på solceller till villan.", "time_in_call_secs": 4},
    {"role": "agent", "message": None, "time_in_call_secs": 8},
    {"role": "agent", "message": "Toppen, jag skickar en offert i morgon.", "time_in_call_secs": 11},
]


@pytest.fixture
def insert_conversation(db: psycopg.Connection[Any]) -> Callable[..., str]:
    """Insert a finished conversation with insights; return its conversation_id."""

    def insert(
        external_number: str | None = "+46701112233",
        collected: dict[str, str] | None = None,
        insights: dict[str, Any] | None = None,
        **columns: Any,
    ) -> str:
        conversation_id = f"conv_{uuid.uuid4().hex[:16]}"
        phone_call = {"direction": "inbound", "agent_number": "+46852250000"}
        if external_number is not None:
            phone_call["external_number"] = external_number
        metadata = {
            "metadata": {"start_time_unix_secs": 1764842400, "call_duration_secs": 95, "phone_call": phone_call},
            "analysis": {
                "call_summary_title": "Offert på solceller",
                "transcript_summary": "Kunden vill ha en offert.",
                "data_collection_results": {
                    key: {"value": value, "rationale": "Kunden sa det."} for key, value in (collected or {}).items()
                },
            },
        }
        db.execute(
            "INSERT INTO conversations (conversation_id, agent_id, status, transcript, summary, metadata)"
            " VALUES (%s, 'agent_solkraft', %s, %s, %s, %s)",
            (
                conversation_id,
                columns.get("status", "done"),
                json.dumps(TURNS, ensure_ascii=False),
                "Kunden vill ha en offert på solceller.",
                Jsonb(metadata),
            ),
        )
        if insights is not None:
            db.execute(
                "INSERT INTO insights (conversation_id, sentiment, key_points, deal_stage, competitor_mentions, next_steps)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    conversation_id,
                    insights.get("sentiment"),
                    insights.get("key_points", ["Villa med söderläge"]),
                    insights.get("deal_stage"),
                    insights.get("competitor_mentions", []),
                    insights.get("next_steps", ["Skicka offert"]),
                ),
            )
        return conversation_id

    return insert


@pytest.fixture
def run_conversations(
    dagster_instance: DagsterInstance, postgres: PostgresResource, hubspot: HubSpotResource
) -> Callable[..., ExecuteInProcessResult]:
    def run(settings: CallSyncSettings | None = None, **fetch_config: Any) -> ExecuteInProcessResult:
        return sync_conversations_to_hubspot.execute_in_process(
            run_config={"ops": {"fetch_conversations": {"config": fetch_config}}},
            resources={"postgres": postgres, "hubspot": hubspot, "settings": settings or CallSyncSettings()},
            instance=dagster_instance,
            raise_on_error=False,
        )

    return run


def conversation_row(db: psycopg.Connection[Any], conversation_id: str) -> dict[str, Any]:
    row = db.execute("SELECT * FROM conversations WHERE conversation_id = %s", (conversation_id,)).fetchone()
    assert row is not None
    return row


def history(db: psycopg.Connection[Any], conversation_id: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT sync_type, hubspot_id, status, error_message, data FROM sync_history WHERE conversation_id = %s"
        " ORDER BY created_at, id",
        (conversation_id,),
    ).fetchall()


def associated(object_json: dict[str, Any], to_type: str) -> dict[str, set[int]]:
    targets: dict[str, set[int]] = {}
    for association in object_json["associations"].get(to_type, []):
        targets.setdefault(str(association["id"]), set()).add(association["typeId"])
    return targets


def test_positive_conversation_gets_deal_note_and_task(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "Positive", "deal_stage": "Qualified"})

    result = run_conversations()

    assert result.success
    row = conversation_row(db, conversation_id)
    assert row["sync_status"] == "synced"
    contact, deal, note, task = (standin_objects(standin, kind)[0] for kind in ("contacts", "deals", "notes", "tasks"))
    assert contact["properties"]["phone"] == "+46701112233"
    assert (row["hubspot_contact_id"], row["hubspot_deal_id"], row["hubspot_note_id"], row["hubspot_task_id"]) == (
        contact["id"],
        deal["id"],
        note["id"],
        task["id"],
    )
    assert deal["properties"]["dealstage"] == "qualifiedtobuy"
    assert conversation_marker(conversation_id, SyncType.DEAL) in deal["properties"]["dealname"]
    assert associated(deal, "contacts") == {contact["id"]: {3}}
    assert associated(note, "contacts") == {contact["id"]: {202}}
    assert associated(note, "deals") == {deal["id"]: {214}}
    assert associated(task, "contacts") == {contact["id"]: {204}}
    assert associated(task, "deals") == {deal["id"]: {216}}
    assert task["properties"]["hs_task_status"] == "NOT_STARTED"
    assert "Solkraft" in note["properties"]["hs_note_body"]
    written = {
        (entry["sync_type"], entry["hubspot_id"])
        for entry in history(db, conversation_id)
        if entry["status"] == "success"
    }
    assert {("contact", contact["id"]), ("deal", deal["id"]), ("note", note["id"]), ("task", task["id"])} <= written


@pytest.mark.parametrize("sentiment", ["neutral", "negative", "mixed", None])
def test_non_positive_conversation_gets_no_task(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    sentiment: str | None,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": sentiment, "deal_stage": "closedwon"})

    assert run_conversations().success

    row = conversation_row(db, conversation_id)
    assert row["sync_status"] == "synced"
    assert row["hubspot_task_id"] is None
    assert not standin_objects(standin, "tasks")
    assert len(standin_objects(standin, "notes")) == 1


def test_unknown_stage_falls_back_and_is_recorded(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "neutral", "deal_stage": "väntar på budget"})

    assert run_conversations(CallSyncSettings(deal_default_stage="presentationscheduled")).success

    assert standin_objects(standin, "deals")[0]["properties"]["dealstage"] == "presentationscheduled"
    fallback = [entry for entry in history(db, conversation_id) if entry["data"]["action"] == "stage_fallback"]
    assert fallback and fallback[0]["data"]["insight_stage"] == "väntar på budget"


def test_collected_email_finds_existing_contact(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    contact_id = seed_standin(
        standin, {"contacts": [{"properties": {"email": "anna@solkraft.se", "firstname": "Anna"}}]}
    )["contacts"][0]
    conversation_id = insert_conversation(external_number=None, collected={"email": "Anna@Solkraft.se"}, insights={})

    assert run_conversations().success

    assert conversation_row(db, conversation_id)["hubspot_contact_id"] == contact_id
    assert len(standin_objects(standin, "contacts")) == 1
    assert "Anna" in standin_objects(standin, "deals")[0]["properties"]["dealname"]


def test_no_contact_details_skipped(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(external_number=None, insights={"sentiment": "positive"})

    assert run_conversations().success

    row = conversation_row(db, conversation_id)
    assert (row["sync_status"], row["sync_reason_code"]) == ("skipped", "no_contact_details")
    assert not standin_objects(standin, "deals")
    assert [entry["sync_type"] for entry in history(db, conversation_id)] == ["conversation"]


def test_rerun_after_lost_write_back_creates_nothing(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "positive"})
    assert run_conversations().success
    # As if the write-back had never happened: the ids stored at create time remain.
    db.execute("UPDATE conversations SET sync_status = 'pending' WHERE conversation_id = %s", (conversation_id,))

    assert run_conversations().success

    assert [len(standin_objects(standin, kind)) for kind in ("contacts", "deals", "notes", "tasks")] == [1, 1, 1, 1]
    assert conversation_row(db, conversation_id)["sync_status"] == "synced"


def test_crash_after_deal_create_finds_deal_by_marker(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "neutral"})
    # The deal was created, then the run died before storing its id; the request is older than the search lag.
    deal_id = seed_standin(
        standin,
        {
            "deals": [
                {
                    "properties": {
                        "dealname": f"Anna \N{EN DASH} Offert · {conversation_marker(conversation_id, SyncType.DEAL)}"
                    }
                }
            ]
        },
    )["deals"][0]
    db.execute(
        "UPDATE conversations SET hubspot_deal_requested_at = now() - interval '2 minutes' WHERE conversation_id = %s",
        (conversation_id,),
    )

    assert run_conversations().success

    assert [deal["id"] for deal in standin_objects(standin, "deals")] == [deal_id]
    row = conversation_row(db, conversation_id)
    assert (row["sync_status"], row["hubspot_deal_id"]) == ("synced", deal_id)
    actions = [entry["data"]["action"] for entry in history(db, conversation_id)]
    assert "deal_found_existing" in actions
    # The deal left by the crashed run had no association yet; the run adds it.
    assert "deal_association_added" in actions
    deal = standin_objects(standin, "deals")[0]
    assert associated(deal, "contacts") == {row["hubspot_contact_id"]: {3}}


def test_unconfirmed_create_within_lag_is_put_off(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "neutral"})
    db.execute(
        "UPDATE conversations SET hubspot_deal_requested_at = now() - interval '5 seconds' WHERE conversation_id = %s",
        (conversation_id,),
    )

    assert run_conversations().success

    row = conversation_row(db, conversation_id)
    assert (row["sync_status"], row["sync_reason_code"]) == ("failed", "deal_create_unconfirmed")
    assert row["sync_next_attempt_at"] > datetime.now(UTC) + timedelta(seconds=30)
    assert row["sync_attempts"] == 0
    assert not standin_objects(standin, "deals")


def test_dry_run_writes_nothing(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "positive"})

    assert run_conversations(dry_run=True).success

    assert conversation_row(db, conversation_id)["sync_status"] == "pending"
    assert not standin_objects(standin, "deals")
    assert not history(db, conversation_id)


def test_not_done_conversation_waits(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
) -> None:
    conversation_id = insert_conversation(status="in-progress", insights={"sentiment": "positive"})

    assert run_conversations().output_for_node("write_back_conversations")["conversations"] == 0
    assert conversation_row(db, conversation_id)["sync_status"] == "pending"


def test_deal_history_kept_when_note_fails(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "positive"})
    httpx.post(
        f"{standin.url}/_standin/faults",
        json={"status": 500, "count": 1, "path": "/crm/v3/objects/notes/batch/create", "method": "POST"},
    ).raise_for_status()

    assert run_conversations().success

    row = conversation_row(db, conversation_id)
    deal_id = standin_objects(standin, "deals")[0]["id"]
    assert (row["sync_status"], row["hubspot_deal_id"]) == ("failed", deal_id)
    assert ("deal", deal_id, "success") in {
        (entry["sync_type"], entry["hubspot_id"], entry["status"]) for entry in history(db, conversation_id)
    }


def test_collected_email_comes_before_collected_number(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    anna = seed_standin(standin, {"contacts": [{"properties": {"email": "anna@solkraft.se", "firstname": "Anna"}}]})[
        "contacts"
    ][0]
    conversation_id = insert_conversation(
        external_number=None, collected={"epost": "anna@solkraft.se", "telefon": "070-555 12 34"}, insights={}
    )

    assert run_conversations().success

    assert conversation_row(db, conversation_id)["hubspot_contact_id"] == anna
    assert len(standin_objects(standin, "contacts")) == 1


def test_unfinished_conversation_not_claimed_by_id(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(status="in-progress", insights={"sentiment": "positive"})

    assert run_conversations(conversation_ids=[conversation_id]).success

    assert conversation_row(db, conversation_id)["sync_status"] == "pending"
    assert not standin_objects(standin, "deals")


def test_dry_run_reports_whole_conversation(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
) -> None:
    insert_conversation(insights={"sentiment": "positive"})

    summary = run_conversations(dry_run=True).output_for_node("write_back_conversations")

    assert (summary["synced"], summary["failed"], summary["deals_created"]) == (1, 0, 0)


def test_recent_conversation_without_insights_waits(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    conversation_id = insert_conversation(insights=None)

    assert run_conversations().success

    row = conversation_row(db, conversation_id)
    assert (row["sync_status"], row["sync_reason_code"], row["sync_attempts"]) == ("failed", "insights_pending", 0)
    assert not standin_objects(standin, "deals")


@pytest.mark.parametrize("kind", ["deals", "notes", "tasks"])
def test_create_applied_but_answered_502_not_duplicated(
    run_conversations: Callable[..., ExecuteInProcessResult],
    insert_conversation: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    kind: str,
) -> None:
    conversation_id = insert_conversation(insights={"sentiment": "positive"})
    httpx.post(
        f"{standin.url}/_standin/faults",
        json={
            "status": 502,
            "count": 1,
            "path": f"/crm/v3/objects/{kind}/batch/create",
            "method": "POST",
            "apply_request": True,
        },
    ).raise_for_status()

    assert run_conversations().success
    row = conversation_row(db, conversation_id)
    assert (row["sync_status"], row["sync_reason_code"]) == ("failed", f"hubspot_{kind[:-1]}_create_unconfirmed")
    # The retry comes once the search lag has passed.
    db.execute(
        f"UPDATE conversations SET sync_next_attempt_at = now() - interval '1 second',"
        f" hubspot_{kind[:-1]}_requested_at = now() - interval '2 minutes' WHERE conversation_id = %s",
        (conversation_id,),
    )
    assert run_conversations().success

    assert conversation_row(db, conversation_id)["sync_status"] == "synced"
    assert [len(standin_objects(standin, name)) for name in ("deals", "notes", "tasks")] == [1, 1, 1]
