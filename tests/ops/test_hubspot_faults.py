"""HubSpot failing under the call sync job: after each fault, every session is synced exactly once (one CALL
per hs_call_external_id, one contact per number) or left with a clear status. The faults are injected in the
stand-in over HTTP; the database and the Dagster instance are real."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from dagster import ExecuteInProcessResult

from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.resources.hubspot import HubSpotResource
from tests.conftest import STANDIN_TOKEN, session_row, standin_objects, sync_log

CALLS_BATCH_CREATE = "/crm/v3/objects/calls/batch/create"
CONTACTS_BATCH_CREATE = "/crm/v3/objects/contacts/batch/create"


def add_fault(standin: StandinServer, **fault: Any) -> None:
    httpx.post(f"{standin.url}/_standin/faults", json={"count": 1, **fault}).raise_for_status()


def calls_per_external_id(standin: StandinServer) -> Counter[str]:
    return Counter(call["properties"]["hs_call_external_id"] for call in standin_objects(standin, "calls"))


def contacts_per_phone(standin: StandinServer) -> Counter[str]:
    return Counter(contact["properties"].get("phone") for contact in standin_objects(standin, "contacts"))


@pytest.fixture
def search_lag(standin: StandinServer) -> Iterator[Callable[[float], None]]:
    """Make the stand-in's search lag behind creates, as HubSpot's does; restored after the test."""

    def set_lag(seconds: float) -> None:
        standin.state.search_lag_seconds = seconds

    yield set_lag
    standin.state.search_lag_seconds = 0.0


def test_create_applied_but_timed_out_found_not_duplicated(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_ids = [insert_session(from_number=f"070-300 00 {index:02d}") for index in range(3)]
    # HubSpot creates the CALLs but the response never arrives within the client's timeout.
    add_fault(standin, path=CALLS_BATCH_CREATE, method="POST", apply_request=True, delay_seconds=3)
    impatient = HubSpotResource(
        access_token=STANDIN_TOKEN,
        base_url=standin.url,
        timeout_seconds=1.0,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
        requests_per_ten_seconds=1000,
        searches_per_second=100,
    )

    first = run_sync_job(hubspot_resource=impatient)

    assert first.success
    assert sum(calls_per_external_id(standin).values()) == 3
    for session_id in session_ids:
        row = session_row(db, session_id)
        assert row["sync_status"] == "failed"
        assert row["sync_reason_code"] == "hubspot_call_create_unconfirmed"
        assert row["hubspot_call_requested_at"] is not None
        assert row["sync_next_attempt_at"] >= datetime.now(UTC) + timedelta(seconds=30)

    # An operator replays them at once; the stand-in's search already shows the CALLs.
    second = run_sync_job(session_ids=session_ids)

    assert second.success
    assert set(calls_per_external_id(standin).values()) == {1}
    for session_id in session_ids:
        assert session_row(db, session_id)["sync_status"] == "synced"
        assert "call_found_existing" in [entry["action"] for entry in sync_log(db, session_id)]


def test_unconfirmed_create_waits_out_search_lag(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    search_lag: Callable[[float], None],
) -> None:
    session_id = insert_session()
    add_fault(standin, status=502, path=CALLS_BATCH_CREATE, method="POST", apply_request=True)
    search_lag(3600)
    assert run_sync_job().success

    # Within the lag window, search cannot see the CALL: the session is put off, not created again.
    replay = run_sync_job(session_ids=[session_id])

    assert replay.success
    assert sum(calls_per_external_id(standin).values()) == 1
    row = session_row(db, session_id)
    assert row["sync_status"] == "failed"
    assert row["sync_reason_code"] == "call_create_unconfirmed"
    assert row["sync_next_attempt_at"] > datetime.now(UTC)

    # Once search has caught up, the CALL is found.
    search_lag(0)
    assert run_sync_job(session_ids=[session_id]).success
    assert calls_per_external_id(standin) == Counter({session_row(db, session_id)["telavox_call_id"]: 1})
    assert session_row(db, session_id)["sync_status"] == "synced"


def test_unapplied_create_sent_again_after_lag(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_id = insert_session()
    # A 502 that HubSpot did not apply: after the lag window a search proves there is no CALL.
    add_fault(standin, status=502, path=CALLS_BATCH_CREATE, method="POST")
    assert run_sync_job().success
    assert session_row(db, session_id)["sync_status"] == "failed"
    db.execute(
        "UPDATE telavox_call_sessions SET hubspot_call_requested_at = now() - interval '2 minutes' WHERE id = %s",
        (session_id,),
    )

    assert run_sync_job(session_ids=[session_id]).success

    assert sum(calls_per_external_id(standin).values()) == 1
    assert session_row(db, session_id)["sync_status"] == "synced"


RUN_UNTIL_KILLED = """
import json, sys
from dagster import DagsterInstance
from callsync_dagster.definitions import defs
defs.resolve_job_def("sync_calls_to_hubspot").execute_in_process(
    run_config={"ops": {"fetch": {"config": {"max_batch_size": 20}}}},
    instance=DagsterInstance.ephemeral(),
    raise_on_error=False,
)
"""


def test_run_killed_between_create_and_write_back(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    database_url: str,
    db_schema: str,
) -> None:
    session_ids = [insert_session(from_number=f"070-400 00 {index:02d}") for index in range(4)]
    # The create is applied, then held, so the run is still waiting for the response when it is killed.
    add_fault(standin, path=CALLS_BATCH_CREATE, method="POST", apply_request=True, delay_seconds=60)
    environment = {
        **os.environ,
        "CALLSYNC_DATABASE_URL": database_url,
        "CALLSYNC_DB_SCHEMA": db_schema,
        "HUBSPOT_ACCESS_TOKEN": STANDIN_TOKEN,
        "HUBSPOT_BASE_URL": standin.url,
    }
    process = subprocess.Popen([sys.executable, "-c", RUN_UNTIL_KILLED], env=environment)
    try:
        deadline = time.monotonic() + 60
        while sum(calls_per_external_id(standin).values()) < 4:
            assert time.monotonic() < deadline, "the run never reached the CALL create"
            assert process.poll() is None, "the run ended before the CALL create"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    for session_id in session_ids:
        row = session_row(db, session_id)
        assert row["sync_status"] == "syncing"
        assert row["hubspot_call_requested_at"] is not None
        assert row["hubspot_engagement_id"] is None
    # The dead run's lease runs out; the CALLs were sent over a minute ago as far as search lag goes.
    db.execute(
        "UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second',"
        " hubspot_call_requested_at = now() - interval '2 minutes' WHERE id = ANY(%s::uuid[])",
        (session_ids,),
    )

    assert run_sync_job().success

    assert set(calls_per_external_id(standin).values()) == {1}
    assert sum(calls_per_external_id(standin).values()) == 4
    assert {session_row(db, session_id)["sync_status"] for session_id in session_ids} == {"synced"}


def test_contact_create_answer_lost_gives_one_contact(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    search_lag: Callable[[float], None],
) -> None:
    first_call = insert_session(from_number="073-555 12 34")
    # The contact is created but the connection drops before the response, and search cannot see it yet.
    add_fault(standin, path=CONTACTS_BATCH_CREATE, method="POST", apply_request=True, drop_connection=True)
    search_lag(3600)
    assert run_sync_job().success
    assert session_row(db, first_call)["sync_reason_code"] == "hubspot_contact_create_unconfirmed"

    # A second call from the same number, while the first create is still within the lag window.
    second_call = insert_session(from_number="+46735551234")
    assert run_sync_job(session_ids=[first_call, second_call]).success
    assert contacts_per_phone(standin) == Counter({"+46735551234": 1})
    assert {session_row(db, session_id)["sync_reason_code"] for session_id in (first_call, second_call)} == {
        "contact_create_in_flight"
    }

    search_lag(0)
    db.execute(
        "UPDATE callsync_contact_numbers SET requested_at = now() - interval '10 minutes' WHERE phone_e164 = %s",
        ("+46735551234",),
    )
    assert run_sync_job(session_ids=[first_call, second_call]).success

    assert contacts_per_phone(standin) == Counter({"+46735551234": 1})
    contact_id = standin_objects(standin, "contacts")[0]["id"]
    for session_id in (first_call, second_call):
        row = session_row(db, session_id)
        assert row["sync_status"] == "synced"
        assert row["hubspot_contact_id"] == contact_id


def test_repeated_new_number_one_contact(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    search_lag: Callable[[float], None],
) -> None:
    search_lag(3600)
    session_ids = [insert_session(from_number=number) for number in ("0709876543", "+46 70 987 65 43", "070-987 65 43")]

    assert run_sync_job().success
    # A later run within the search lag uses the map, not a search that cannot see the contact yet.
    later = insert_session(from_number="0046709876543")
    assert run_sync_job().success

    assert contacts_per_phone(standin) == Counter({"+46709876543": 1})
    contact_ids = {session_row(db, session_id)["hubspot_contact_id"] for session_id in [*session_ids, later]}
    assert len(contact_ids) == 1
    assert "map" in json.dumps([entry["detail"] for entry in sync_log(db, later)])


def test_partial_failure_fails_only_the_bad_session(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    good = [insert_session(from_number=f"070-500 00 {index:02d}") for index in range(3)]
    # A deal id that does not exist makes HubSpot refuse that one CALL's inline association.
    bad = insert_session(from_number="070-500 00 99", hubspot_deal_id="987654321")

    assert run_sync_job().success

    assert {session_row(db, session_id)["sync_status"] for session_id in good} == {"synced"}
    row = session_row(db, bad)
    assert row["sync_status"] == "failed"
    assert row["sync_reason_code"] == "hubspot_call_rejected"
    assert row["sync_next_attempt_at"] is None
    assert "987654321" in row["sync_reason"]
    failed_entry = [entry for entry in sync_log(db, bad) if entry["action"] == "failed"][-1]
    assert failed_entry["error"] == row["sync_reason"]
    assert sum(calls_per_external_id(standin).values()) == 3
    assert row["hubspot_call_requested_at"] is None


def test_rate_limit_storm_fails_no_session(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_ids = [insert_session(from_number=f"070-600 00 {index:02d}") for index in range(5)]
    add_fault(standin, status=429, count=3, path_contains="/crm/", policy_name="TEN_SECONDLY_ROLLING")

    result = run_sync_job()

    assert result.success
    assert {session_row(db, session_id)["sync_status"] for session_id in session_ids} == {"synced"}
    assert result.output_for_node("write_back")["hubspot_429s"] == 3
    assert set(calls_per_external_id(standin).values()) == {1}


def test_daily_limit_stops_run_and_defers_to_reset(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    hubspot: HubSpotResource,
) -> None:
    session_ids = [insert_session(from_number=f"070-700 00 {index:02d}") for index in range(3)]
    add_fault(standin, status=429, path_contains="/crm/", policy_name="DAILY")
    client = hubspot.create_client()
    expected_reset = client.next_daily_reset()
    client.close()

    result = run_sync_job()

    assert result.success, "a used-up daily limit stops the run cleanly"
    assert not standin_objects(standin, "calls")
    for session_id in session_ids:
        row = session_row(db, session_id)
        assert row["sync_status"] == "failed"
        assert row["sync_reason_code"] == "hubspot_paused"
        assert row["sync_attempts"] == 0
        assert abs((row["sync_next_attempt_at"] - expected_reset).total_seconds()) < 5


@pytest.mark.parametrize(
    ("status", "fault", "expected_words"),
    [
        pytest.param(401, {}, "create a new private-app token", id="401-token"),
        pytest.param(
            403, {"required_scopes": ["crm.objects.contacts.write"]}, "crm.objects.contacts.write", id="403-scope"
        ),
    ],
)
def test_auth_failure_stops_run_without_charging(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    status: int,
    fault: dict[str, Any],
    expected_words: str,
) -> None:
    session_ids = [insert_session(from_number=f"070-800 00 {index:02d}") for index in range(3)]
    add_fault(standin, status=status, path_contains="/crm/", count=10, **fault)

    result = run_sync_job()

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and expected_words in failure.to_string()
    assert STANDIN_TOKEN not in failure.to_string()
    for session_id in session_ids:
        row = session_row(db, session_id)
        assert row["sync_status"] == "failed"
        assert row["sync_reason_code"] == "hubspot_auth"
        assert row["sync_attempts"] == 0
        assert expected_words in row["sync_reason"]
    assert not standin_objects(standin, "calls")


def test_concurrent_runs_share_new_numbers_one_contact_each(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
    database_url: str,
    db_schema: str,
    search_lag: Callable[[float], None],
) -> None:
    # Four new numbers, five calls each, so both runs see every number; search cannot show a new contact.
    search_lag(3600)
    numbers = [f"+4673900000{index}" for index in range(4)]
    session_ids = [insert_session(from_number=numbers[index % 4]) for index in range(20)]
    environment = {
        **os.environ,
        "CALLSYNC_DATABASE_URL": database_url,
        "CALLSYNC_DB_SCHEMA": db_schema,
        "HUBSPOT_ACCESS_TOKEN": STANDIN_TOKEN,
        "HUBSPOT_BASE_URL": standin.url,
    }
    script = RUN_UNTIL_KILLED.replace('"max_batch_size": 20', '"max_batch_size": 10')
    processes = [subprocess.Popen([sys.executable, "-c", script], env=environment) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=120) == 0

    assert contacts_per_phone(standin) == Counter(dict.fromkeys(numbers, 1))
    statuses = Counter(
        (session_row(db, session_id)["sync_status"], session_row(db, session_id)["sync_reason_code"])
        for session_id in session_ids
    )
    assert set(statuses) <= {("synced", None), ("failed", "contact_create_in_flight")}

    # The put-off sessions find the contacts in the number map on their next attempt.
    db.execute("UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second'")
    assert run_sync_job().success

    assert contacts_per_phone(standin) == Counter(dict.fromkeys(numbers, 1))
    assert {session_row(db, session_id)["sync_status"] for session_id in session_ids} == {"synced"}
    assert set(calls_per_external_id(standin).values()) == {1}


def test_bad_association_fails_only_its_session(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    # A CALL the application logged, whose session names a deal that no longer exists.
    logged_call = httpx.post(
        f"{standin.url}/_standin/seed", json={"calls": [{"properties": {"hs_timestamp": "2026-04-03T07:00:30.646Z"}}]}
    ).json()["calls"][0]
    poisoned = insert_session(from_number="070-900 00 01", hubspot_engagement_id=logged_call, hubspot_deal_id="777777")
    healthy = [insert_session(from_number=f"070-900 00 1{index}") for index in range(3)]

    assert run_sync_job().success

    assert {session_row(db, session_id)["sync_status"] for session_id in healthy} == {"synced"}
    row = session_row(db, poisoned)
    assert (row["sync_status"], row["sync_reason_code"]) == ("failed", "hubspot_association_rejected")
    assert "777777" in row["sync_reason"]


def test_deleted_mapped_contact_looked_up(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    # The number map points at a contact that was deleted in HubSpot.
    db.execute(
        "INSERT INTO callsync_contact_numbers (portal, phone_e164, contact_id, state) VALUES ('default', %s, '424242', 'known')",
        ("+46709990002",),
    )
    session_id = insert_session(from_number="070-999 00 02")

    assert run_sync_job().success
    row = session_row(db, session_id)
    assert (row["sync_status"], row["sync_reason_code"]) == ("failed", "hubspot_call_rejected")
    assert row["sync_next_attempt_at"] is not None
    assert not db.execute("SELECT 1 FROM callsync_contact_numbers WHERE phone_e164 = '+46709990002'").fetchall()

    assert run_sync_job(session_ids=[session_id]).success

    row = session_row(db, session_id)
    contacts = standin_objects(standin, "contacts")
    assert row["sync_status"] == "synced"
    assert [contact["id"] for contact in contacts] == [row["hubspot_contact_id"]]


def test_rejected_contact_batch_sent_singly(
    run_sync_job: Callable[..., ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    standin: StandinServer,
) -> None:
    session_ids = [insert_session(from_number=f"070-910 00 0{index}") for index in range(3)]
    add_fault(standin, status=400, path=CONTACTS_BATCH_CREATE, method="POST")

    assert run_sync_job().success

    assert {session_row(db, session_id)["sync_status"] for session_id in session_ids} == {"synced"}
    assert len(standin_objects(standin, "contacts")) == 3
