"""The call sync job end to end: real PostgreSQL, the stand-in over HTTP, a real Dagster instance."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult

from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.resources.hubspot import HubSpotResource
from tests.conftest import STANDIN_TOKEN, seed_standin, session_row, standin_objects, sync_log

CUSTOMER_STORED = "+46 70-123 45 67"
CUSTOMER_E164 = "+46701234567"
AGENT = "anna.agent@example.se"


@pytest.fixture
def known_customer(standin: StandinServer) -> dict[str, str]:
    """A customer contact with a primary company, and the agent's owner, already in HubSpot."""
    created = seed_standin(
        standin,
        {
            "owners": [{"email": "Anna.Agent@example.se", "firstName": "Anna", "lastName": "Agent"}],
            "companies": [{"properties": {"name": "Bygg & Betong AB", "domain": "byggbetong.se"}}],
        },
    )
    company_id = created["companies"][0]
    contact = seed_standin(
        standin,
        {
            "contacts": [
                {
                    "properties": {"firstname": "Åsa", "lastname": "Öberg", "phone": CUSTOMER_STORED},
                    "primary_company_id": company_id,
                }
            ]
        },
    )
    return {"contact_id": contact["contacts"][0], "company_id": company_id, "owner_id": created["owners"][0]}


def _calls(standin: StandinServer) -> list[dict[str, Any]]:
    return standin_objects(standin, "calls")


def _associated(call: dict[str, Any], object_type: str) -> dict[str, set[int]]:
    targets: dict[str, set[int]] = {}
    for association in call["associations"].get(object_type, []):
        targets.setdefault(str(association["id"]), set()).add(association["typeId"])
    return targets


def _event_log_text(instance: DagsterInstance, result: ExecuteInProcessResult) -> str:
    """Return every message and event the run stored in the Dagster event log, as one text."""
    return "\n".join(f"{entry.user_message} {entry.dagster_event}" for entry in instance.all_logs(result.run_id))


TRANSCRIPT = {
    "full_text": "Hej, det gäller offerten. Ja, skicka den gärna.",
    "summary": "Kunden vill ha offerten skickad <idag>.",
    "speaker_labels": [
        {"speaker": "agent", "text": "Hej, det gäller offerten.", "start": 0.0, "end": 2.1},
        {"speaker": "customer", "text": "Ja, skicka den gärna.", "start": 2.3, "end": 4.0},
    ],
}


def test_known_contact_synced(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    known_customer: dict[str, str],
) -> None:
    session_id = insert_session(
        transcription=TRANSCRIPT, agent_user_id=AGENT, recording_url="https://rec.example/1.mp3"
    )

    result = run_sync_job()

    assert result.success
    calls = _calls(standin)
    assert len(calls) == 1
    call = calls[0]
    row = session_row(db, session_id)
    assert row["sync_status"] == "synced"
    assert row["hubspot_engagement_id"] == call["id"]
    assert row["hubspot_contact_id"] == known_customer["contact_id"]
    assert row["hubspot_company_id"] == known_customer["company_id"]
    assert row["synced_at"] is not None
    properties = call["properties"]
    assert properties["hs_call_external_id"] == row["telavox_call_id"]
    assert properties["hubspot_owner_id"] == known_customer["owner_id"]
    assert properties["hs_call_from_number"] == CUSTOMER_E164
    assert properties["hs_call_status"] == "COMPLETED"
    assert properties["hs_call_recording_url"] == "https://rec.example/1.mp3"
    assert properties["hs_call_body"].index("Kunden vill ha offerten") < properties["hs_call_body"].index("Agent:")
    assert "&lt;idag&gt;" in properties["hs_call_body"]
    assert _associated(call, "contacts") == {known_customer["contact_id"]: {194}}
    assert _associated(call, "companies") == {known_customer["company_id"]: {182}}
    actions = [entry["action"] for entry in sync_log(db, session_id)]
    assert actions == ["call_create_requested", "contact_matched", "call_created", "call_confirmed"]
    assert len(standin_objects(standin, "contacts")) == 1


def test_unknown_number_creates_contact(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session(direction="OUTGOING", from_number="201", to_number="0046 73 757 36 88")

    assert run_sync_job().success

    contacts = standin_objects(standin, "contacts")
    assert len(contacts) == 1
    assert contacts[0]["properties"]["phone"] == "+46737573688"
    assert contacts[0]["properties"]["firstname"] == "073-757 36 88"
    row = session_row(db, session_id)
    assert row["hubspot_contact_id"] == contacts[0]["id"]
    assert row["sync_status"] == "synced"
    assert "contact_created" in [entry["action"] for entry in sync_log(db, session_id)]
    assert _calls(standin)[0]["properties"]["hs_call_direction"] == "OUTBOUND"


def test_same_new_number_one_contact(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    standin: StandinServer,
) -> None:
    insert_session(from_number="0701112233")
    insert_session(from_number="+46 70 111 22 33")

    assert run_sync_job().success

    assert len(standin_objects(standin, "contacts")) == 1
    assert len(_calls(standin)) == 2


def test_same_number_one_contact_despite_lag(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    standin: StandinServer,
) -> None:
    # HubSpot's search lags behind creates, so the second session cannot find the first one's contact.
    standin.state.search_lag_seconds = 30
    try:
        insert_session(from_number="0702223344")
        insert_session(from_number="+46 70 222 33 44")
        assert run_sync_job().success
    finally:
        standin.state.search_lag_seconds = 0

    assert len(standin_objects(standin, "contacts")) == 1
    assert len(_calls(standin)) == 2


def test_prefilled_contact_and_deal(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    known_customer: dict[str, str],
) -> None:
    deal_id = seed_standin(standin, {"deals": [{"properties": {"dealname": "Offert Q1", "pipeline": "default"}}]})[
        "deals"
    ][0]
    session_id = insert_session(
        from_number="0709998877", hubspot_contact_id=known_customer["contact_id"], hubspot_deal_id=deal_id
    )

    assert run_sync_job().success

    call = _calls(standin)[0]
    assert _associated(call, "contacts") == {known_customer["contact_id"]: {194}}
    assert _associated(call, "deals") == {deal_id: {206}}
    assert len(standin_objects(standin, "contacts")) == 1
    assert "contact_prefilled" in [entry["action"] for entry in sync_log(db, session_id)]


@pytest.mark.parametrize(
    ("columns", "reason_code"),
    [
        ({"from_number": "anonymous"}, "hidden_number"),
        ({"from_number": "+46"}, "hidden_number"),
        ({"from_number": "12345"}, "invalid_number"),
        ({"direction": None, "from_number": "0701234567", "to_number": "08-123 456 78"}, "unknown_direction"),
    ],
    ids=["anonymous", "bare country code", "junk", "direction unknown"],
)
def test_unusable_number_skipped(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    columns: dict[str, Any],
    reason_code: str,
) -> None:
    session_id = insert_session(**columns)

    assert run_sync_job().success

    row = session_row(db, session_id)
    assert row["sync_status"] == "skipped"
    assert row["sync_reason_code"] == reason_code
    assert row["sync_reason"]
    assert _calls(standin) == []


def test_hidden_number_with_prefilled_contact(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    known_customer: dict[str, str],
) -> None:
    session_id = insert_session(from_number="private", hubspot_contact_id=known_customer["contact_id"])

    assert run_sync_job().success

    row = session_row(db, session_id)
    assert row["sync_status"] == "synced"
    call = _calls(standin)[0]
    assert call["properties"]["hs_call_title"].startswith("Inbound call from an unknown number on ")
    assert "hs_call_from_number" not in call["properties"]
    assert _associated(call, "contacts") == {known_customer["contact_id"]: {194}}
    assert "counterparty_number_unusable" in [entry["action"] for entry in sync_log(db, session_id)]


def test_blocked_number_skipped(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    db.execute("INSERT INTO blocked_numbers (phone_number, reason) VALUES ('070-123 45 67', 'colleague')")
    session_id = insert_session(from_number="+46701234567")

    assert run_sync_job().success

    row = session_row(db, session_id)
    assert row["sync_status"] == "skipped"
    assert row["sync_reason_code"] == "blocked_number"
    assert "colleague" in row["sync_reason"]
    assert _calls(standin) == []


def test_failed_transcription_synced_with_note(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session(transcription_status="failed")

    assert run_sync_job().success

    assert session_row(db, session_id)["sync_status"] == "synced"
    assert "the transcription of this call failed" in _calls(standin)[0]["properties"]["hs_call_body"]


def test_unmapped_agent_recorded(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session(agent_user_id="nobody@example.se")

    assert run_sync_job().success

    assert "hubspot_owner_id" not in _calls(standin)[0]["properties"]
    assert "owner_unmapped" in [entry["action"] for entry in sync_log(db, session_id)]


def test_rerun_creates_nothing(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    standin: StandinServer,
    known_customer: dict[str, str],
) -> None:
    for _ in range(3):
        insert_session()
    assert run_sync_job().success
    calls_before = _calls(standin)
    contacts_before = standin_objects(standin, "contacts")

    second = run_sync_job()

    assert second.success
    assert second.output_for_node("write_back")["sessions"] == 0
    assert _calls(standin) == calls_before
    assert standin_objects(standin, "contacts") == contacts_before


def test_crash_before_write_back_no_duplicate(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    known_customer: dict[str, str],
) -> None:
    session_id = insert_session()
    # Write-back fails after the CALL was created, as a crash there would: the session stays claimed.
    db.execute(
        "CREATE FUNCTION reject_outcome() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'simulated crash before write-back'; END $$"
    )
    db.execute(
        "CREATE TRIGGER reject_outcome BEFORE UPDATE ON telavox_call_sessions FOR EACH ROW"
        " WHEN (NEW.sync_status <> 'syncing') EXECUTE FUNCTION reject_outcome()"
    )
    crashed = run_sync_job()
    assert not crashed.success
    assert len(_calls(standin)) == 1
    assert session_row(db, session_id)["sync_status"] == "syncing"

    db.execute("DROP TRIGGER reject_outcome ON telavox_call_sessions")
    db.execute(
        "UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second' WHERE id = %s",
        (session_id,),
    )
    retried = run_sync_job()

    assert retried.success
    calls = _calls(standin)
    assert len(calls) == 1
    row = session_row(db, session_id)
    assert row["sync_status"] == "synced"
    assert row["hubspot_engagement_id"] == calls[0]["id"]
    assert row["sync_attempts"] == 2
    # The CALL id was saved the moment HubSpot returned it, so the retry reads that CALL instead of searching.
    assert "call_prefilled" in [entry["action"] for entry in sync_log(db, session_id)]


def test_applied_create_answered_502_no_duplicate(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session()
    httpx.post(
        f"{standin.url}/_standin/faults",
        json={
            "status": 502,
            "count": 1,
            "path": "/crm/v3/objects/calls/batch/create",
            "method": "POST",
            "apply_request": True,
        },
    ).raise_for_status()

    first = run_sync_job()
    assert first.success
    row = session_row(db, session_id)
    assert row["sync_status"] == "failed"
    assert row["sync_next_attempt_at"] is not None

    second = run_sync_job(session_ids=[session_id])

    assert second.success
    assert len(_calls(standin)) == 1
    assert session_row(db, session_id)["sync_status"] == "synced"


def test_stored_call_id_not_duplicated(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    known_customer: dict[str, str],
) -> None:
    # A CALL the application logged itself, without callsync's external id.
    call_id = seed_standin(standin, {"calls": [{"properties": {"hs_timestamp": "2026-04-03T07:00:30.646Z"}}]})["calls"][
        0
    ]
    session_id = insert_session(hubspot_engagement_id=call_id)

    assert run_sync_job().success

    calls = _calls(standin)
    assert [call["id"] for call in calls] == [call_id]
    assert _associated(calls[0], "contacts") == {known_customer["contact_id"]: {194}}
    row = session_row(db, session_id)
    assert row["sync_status"] == "synced"
    assert row["hubspot_engagement_id"] == call_id
    actions = [entry["action"] for entry in sync_log(db, session_id)]
    assert "call_prefilled" in actions
    assert "association_added" in actions


def test_failed_session_keeps_contact(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session(from_number="0731112233")
    httpx.post(
        f"{standin.url}/_standin/faults",
        json={"status": 400, "count": 1, "path": "/crm/v3/objects/calls/batch/create", "method": "POST"},
    ).raise_for_status()

    assert run_sync_job().success

    row = session_row(db, session_id)
    contacts = standin_objects(standin, "contacts")
    assert row["sync_status"] == "failed"
    assert row["sync_next_attempt_at"] is None
    assert row["hubspot_contact_id"] == contacts[0]["id"]


def test_one_bad_session_fails_alone(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    good = [insert_session(from_number=f"070-123 45 0{index}") for index in range(3)]
    bad = insert_session(hubspot_contact_id="999999999")

    result = run_sync_job()

    assert result.success
    assert [session_row(db, session_id)["sync_status"] for session_id in good] == ["synced"] * 3
    bad_row = session_row(db, bad)
    assert bad_row["sync_status"] == "failed"
    assert "999999999" in bad_row["last_error"]
    assert len(_calls(standin)) == 3


def test_transient_failure_gets_next_attempt(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session()
    httpx.post(
        f"{standin.url}/_standin/faults", json={"status": 503, "count": 50, "path_contains": "/owners"}
    ).raise_for_status()

    assert run_sync_job().success

    row = session_row(db, session_id)
    assert row["sync_status"] == "failed"
    assert row["sync_next_attempt_at"] is not None
    assert "503" in row["last_error"]
    assert row["sync_claim_run_id"] is None


def test_bad_token_stops_run(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    dagster_instance: DagsterInstance,
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    secret = "pat-eu1-this-token-is-wrong"
    session_ids = [insert_session(), insert_session()]
    bad_hubspot = HubSpotResource(access_token=secret, base_url=standin.url, backoff_initial_seconds=0.01)

    result = run_sync_job(hubspot_resource=bad_hubspot)

    assert not result.success
    for session_id in session_ids:
        row = session_row(db, session_id)
        assert row["sync_status"] == "failed"
        assert row["sync_reason_code"] == "hubspot_auth"
        assert "HUBSPOT_ACCESS_TOKEN" in row["last_error"]
        assert secret not in row["last_error"]
        assert row["sync_attempts"] == 0
        assert row["sync_next_attempt_at"] is not None
    assert "HUBSPOT_ACCESS_TOKEN" in _event_log_text(dagster_instance, result)
    assert secret not in _event_log_text(dagster_instance, result)


def test_dry_run_writes_nothing(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    dagster_instance: DagsterInstance,
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session(from_number="0705556677")

    result = run_sync_job(dry_run=True)

    assert result.success
    assert result.output_for_node("write_back")["synced"] == 1
    assert _calls(standin) == []
    assert standin_objects(standin, "contacts") == []
    row = session_row(db, session_id)
    assert row["sync_status"] == "pending"
    assert row["sync_attempts"] == 0
    assert sync_log(db, session_id) == []
    assert "would create CALL" in _event_log_text(dagster_instance, result)


def test_explicit_session_id_only(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    chosen = insert_session()
    other = insert_session()

    result = run_sync_job(session_ids=[chosen])

    assert result.success
    assert session_row(db, chosen)["sync_status"] == "synced"
    assert session_row(db, other)["sync_status"] == "pending"
    assert len(_calls(standin)) == 1


def test_invalid_session_id_rejected(
    run_sync_job: Callable[..., ExecuteInProcessResult], db: psycopg.Connection[Any]
) -> None:
    result = run_sync_job(session_ids=["not-a-uuid"])

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None
    assert "Invalid call session id 'not-a-uuid'" in str(failure.to_string())


def test_run_metadata_has_session_table(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    standin: StandinServer,
) -> None:
    insert_session()
    insert_session(from_number="anonymous")

    result = run_sync_job()

    summary = result.output_for_node("write_back")
    assert summary["synced"] == 1
    assert summary["skipped"] == 1
    outputs = [event for event in result.all_events if event.event_type == DagsterEventType.STEP_OUTPUT]
    metadata = outputs[-1].step_output_data.metadata
    assert "sessions_table" in metadata
    assert "hidden_number" in str(metadata["skipped_by_reason"].value)


RUN_JOB_SCRIPT = """
import json, sys
from dagster import DagsterInstance
from callsync_dagster.definitions import defs
result = defs.resolve_job_def("sync_calls_to_hubspot").execute_in_process(
    run_config={"ops": {"fetch": {"config": {"max_batch_size": 20}}}},
    instance=DagsterInstance.ephemeral(),
    raise_on_error=False,
)
print(json.dumps({"success": result.success, "summary": result.output_for_node("write_back")}))
"""


def test_concurrent_runs_sync_each_once(
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    database_url: str,
    db_schema: str,
) -> None:
    session_ids = [insert_session(from_number=f"070-200 00 {index:02d}") for index in range(30)]
    environment = {
        **os.environ,
        "CALLSYNC_DATABASE_URL": database_url,
        "CALLSYNC_DB_SCHEMA": db_schema,
        "HUBSPOT_ACCESS_TOKEN": STANDIN_TOKEN,
        "HUBSPOT_BASE_URL": standin.url,
    }

    # Two run processes at once, as two Dagster run workers would be.
    processes = [
        subprocess.Popen([sys.executable, "-c", RUN_JOB_SCRIPT], env=environment, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [json.loads(process.communicate(timeout=120)[0].strip().splitlines()[-1]) for process in processes]

    assert all(output["success"] for output in outputs)
    assert sum(output["summary"]["sessions"] for output in outputs) == len(session_ids)
    runs_per_session = db.execute(
        "SELECT call_session_id, count(DISTINCT run_id) AS runs FROM callsync_sync_log"
        " WHERE action = 'call_created' GROUP BY 1"
    ).fetchall()
    assert len(runs_per_session) == len(session_ids)
    assert all(row["runs"] == 1 for row in runs_per_session)
    external_ids = [call["properties"]["hs_call_external_id"] for call in _calls(standin)]
    assert len(external_ids) == len(session_ids)
    assert len(set(external_ids)) == len(session_ids)
    assert {session_row(db, session_id)["sync_status"] for session_id in session_ids} == {"synced"}


def test_replay_failed_from_run_config(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    parked = insert_session()
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_attempts = 5, sync_next_attempt_at = NULL,"
        " sync_reason_code = 'hubspot_upsert' WHERE id = %s",
        (parked,),
    )
    assert run_sync_job().output_for_node("write_back")["sessions"] == 0

    replayed = run_sync_job(replay_failed=True)

    assert replayed.success
    row = session_row(db, parked)
    assert (row["sync_status"], row["sync_attempts"]) == ("synced", 1)
    assert len(_calls(standin)) == 1
