import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from callsync_dagster.core.models import SessionOutcome, SyncLogEntry, SyncStatus
from callsync_dagster.resources.postgres import PostgresResource
from tests.conftest import session_row, sync_log

WAIT = 120
LEASE = 30
MAX = 5


def test_claim_takes_due_sessions(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    due = insert_session()
    claimed = postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    assert [str(session.id) for session in claimed] == [due]
    assert claimed[0].sync_attempts == 1


def test_claim_skips_unended_and_synced(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    insert_session(ended_at=None)
    synced = insert_session()
    db.execute("UPDATE telavox_call_sessions SET sync_status = 'synced' WHERE id = %s", (synced,))
    assert postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX) == []


def test_claim_waits_for_transcript(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    recent_end = datetime.now(UTC) - timedelta(minutes=10)
    old_end = datetime.now(UTC) - timedelta(hours=3)
    insert_session(transcription_status="pending", ended_at=recent_end)
    stale = insert_session(transcription_status="in_progress", ended_at=old_end)
    failed = insert_session(transcription_status="failed", ended_at=recent_end)
    claimed = {str(session.id) for session in postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)}
    assert claimed == {stale, failed}


def test_claim_respects_retry_time(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    later = insert_session()
    due_now = insert_session()
    gave_up = insert_session()
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_next_attempt_at = now() + interval '1 hour'"
        " WHERE id = %s",
        (later,),
    )
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_next_attempt_at = now() - interval '1 minute'"
        " WHERE id = %s",
        (due_now,),
    )
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_next_attempt_at = NULL WHERE id = %s", (gave_up,)
    )
    claimed = {str(session.id) for session in postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)}
    assert claimed == {due_now}


def test_second_claim_gets_nothing(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    insert_session()
    assert len(postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)) == 1
    assert postgres.claim_due_sessions("run-b", 10, WAIT, LEASE, MAX) == []


def test_expired_lease_comes_back(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    postgres.claim_due_sessions("crashed-run", 10, WAIT, LEASE, MAX)
    db.execute(
        "UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second' WHERE id = %s",
        (session_id,),
    )
    reclaimed = postgres.claim_due_sessions("run-b", 10, WAIT, LEASE, MAX)
    assert [str(session.id) for session in reclaimed] == [session_id]
    assert reclaimed[0].sync_attempts == 2
    assert session_row(db, session_id)["sync_claim_run_id"] == "run-b"


def test_concurrent_claims_disjoint(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    session_ids = {insert_session() for _ in range(40)}
    claims: dict[str, list[str]] = {}

    def claim(run_id: str) -> None:
        claims[run_id] = [str(s.id) for s in postgres.claim_due_sessions(run_id, 25, WAIT, LEASE, MAX)]

    threads = [threading.Thread(target=claim, args=(f"run-{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    claimed = [session_id for ids in claims.values() for session_id in ids]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == session_ids


def test_claim_by_id_reports_unclaimed(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    wanted = insert_session()
    synced = insert_session()
    ongoing = insert_session(ended_at=None)
    missing = "00000000-0000-0000-0000-00000000abcd"
    db.execute("UPDATE telavox_call_sessions SET sync_status = 'synced' WHERE id = %s", (synced,))
    result = postgres.claim_sessions_by_id("run-a", [wanted, synced, ongoing, missing], LEASE)
    reasons = {item.session_id: item.reason for item in result.unclaimed}
    assert [str(session.id) for session in result.sessions] == [wanted]
    assert reasons[synced] == "already synced to HubSpot"
    assert reasons[ongoing] == "the call has not ended yet"
    assert reasons[missing] == "no call session has this id"


def test_claim_by_id_ignores_retry_time(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_next_attempt_at = NULL WHERE id = %s",
        (session_id,),
    )
    result = postgres.claim_sessions_by_id("run-a", [session_id], LEASE)
    assert [str(session.id) for session in result.sessions] == [session_id]


def test_newest_transcription_wins(postgres: PostgresResource, insert_session: Callable[..., str], db: Any) -> None:
    session_id = insert_session(
        transcription={
            "full_text": "old",
            "summary": "old summary",
            "created_at": datetime.now(UTC) - timedelta(hours=1),
        }
    )
    db.execute(
        "INSERT INTO transcriptions (call_session_id, full_text, summary) VALUES (%s, 'new', 'new summary')",
        (session_id,),
    )
    transcription = postgres.load_transcriptions([UUID(session_id)])[UUID(session_id)]
    assert transcription.full_text == "new"
    assert transcription.summary == "new summary"
    assert transcription.source == "transcriptions"


def test_transcription_falls_back_to_session(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    session_id = insert_session(transcript="Agent: Hej", summary="Legacy summary")
    transcription = postgres.load_transcriptions([UUID(session_id)])[UUID(session_id)]
    assert transcription.full_text == "Agent: Hej"
    assert transcription.summary == "Legacy summary"
    assert transcription.source == "call_session"


def test_outcome_written_with_log(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    outcome = SessionOutcome(
        status=SyncStatus.SYNCED, hubspot_contact_id="11", hubspot_company_id="22", hubspot_engagement_id="33"
    )
    written = postgres.record_outcome(
        UUID(session_id), "run-a", outcome, [SyncLogEntry(action="call_created", hubspot_object_id="33")], None
    )
    row = session_row(db, session_id)
    assert written is True
    assert row["sync_status"] == "synced"
    assert row["hubspot_engagement_id"] == "33"
    assert row["hubspot_company_id"] == "22"
    assert row["synced_at"] is not None
    assert row["sync_claim_run_id"] is None
    assert [entry["action"] for entry in sync_log(db, session_id)] == ["call_created"]


def test_outcome_rejected_after_claim_lost(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    db.execute("UPDATE telavox_call_sessions SET sync_claim_run_id = 'run-b' WHERE id = %s", (session_id,))
    outcome = SessionOutcome(status=SyncStatus.FAILED, reason="boom", retryable=True)
    written = postgres.record_outcome(UUID(session_id), "run-a", outcome, [SyncLogEntry(action="failed")], None)
    assert written is False
    assert session_row(db, session_id)["sync_status"] == "syncing"
    assert len(sync_log(db, session_id)) == 1


def test_failed_outcome_sets_last_error(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    retry_at = datetime.now(UTC) + timedelta(minutes=5)
    outcome = SessionOutcome(
        status=SyncStatus.FAILED, reason="HubSpot 503", reason_code="hubspot_upsert", retryable=True
    )
    postgres.record_outcome(UUID(session_id), "run-a", outcome, [], retry_at)
    row = session_row(db, session_id)
    assert row["sync_status"] == "failed"
    assert row["last_error"] == "HubSpot 503"
    assert row["sync_reason_code"] == "hubspot_upsert"
    assert abs((row["sync_next_attempt_at"] - retry_at).total_seconds()) < 1


def test_due_query_uses_partial_index(postgres: PostgresResource, db: psycopg.Connection[Any]) -> None:
    # A table of a million calls, nearly all synced: the sensor's query must stay an index scan.
    db.execute(
        "INSERT INTO telavox_call_sessions (telavox_call_id, ended_at, sync_status, transcription_status)"
        " SELECT 'bulk-' || n, now() - interval '3 hours', CASE WHEN n % 500 = 0 THEN 'pending' ELSE 'synced' END,"
        " 'completed' FROM generate_series(1, 1000000) AS n"
    )
    db.execute("ANALYZE telavox_call_sessions")
    plan = postgres.due_sessions_plan(100, WAIT)
    assert "telavox_call_sessions_sync_due_idx" in plan
    assert "Seq Scan" not in plan


def test_abandoned_session_failed_not_reclaimed(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'syncing', sync_attempts = 5, sync_claim_run_id = 'dead-run',"
        " sync_next_attempt_at = now() - interval '1 minute' WHERE id = %s",
        (session_id,),
    )
    assert postgres.claim_due_sessions("run-b", 10, WAIT, LEASE, MAX) == []
    row = session_row(db, session_id)
    assert row["sync_status"] == "failed"
    assert row["sync_reason_code"] == "abandoned"
    assert "dead-run" in row["sync_reason"]
    assert row["sync_next_attempt_at"] is None
    assert [entry["action"] for entry in sync_log(db, session_id)] == ["abandoned"]


def test_claim_by_id_only_due(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    backing_off = insert_session()
    skipped = insert_session()
    due = insert_session()
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_next_attempt_at = now() + interval '5 hours'"
        " WHERE id = %s",
        (backing_off,),
    )
    db.execute("UPDATE telavox_call_sessions SET sync_status = 'skipped' WHERE id = %s", (skipped,))
    result = postgres.claim_sessions_by_id("run-a", [backing_off, skipped, due], LEASE, True, WAIT)
    assert [str(session.id) for session in result.sessions] == [due]
    reasons = {item.session_id: item.reason for item in result.unclaimed}
    assert reasons[backing_off].startswith("no longer due (status failed)")
    assert reasons[skipped].startswith("no longer due (status skipped)")


def test_extend_claim_only_when_held(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    entry = SyncLogEntry(action="call_create_requested")
    assert postgres.extend_claim(UUID(session_id), "run-b", LEASE, [entry]) is False
    assert sync_log(db, session_id) == []
    assert postgres.extend_claim(UUID(session_id), "run-a", LEASE, [entry]) is True
    assert [row["action"] for row in sync_log(db, session_id)] == ["call_create_requested"]


def test_renew_claims_reports_lost(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    kept = insert_session()
    lost = insert_session()
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    db.execute("UPDATE telavox_call_sessions SET sync_claim_run_id = 'run-b' WHERE id = %s", (lost,))
    assert postgres.renew_claims("run-a", [UUID(kept), UUID(lost)], LEASE) == {UUID(kept)}


def test_uncharged_failure_keeps_attempts(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    outcome = SessionOutcome(status=SyncStatus.FAILED, reason="401", retryable=True, charge_attempt=False)
    postgres.record_outcome(UUID(session_id), "run-a", outcome, [], datetime.now(UTC))
    assert session_row(db, session_id)["sync_attempts"] == 0


def test_stored_engagement_id_kept(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session(hubspot_engagement_id="4242")
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE, MAX)
    outcome = SessionOutcome(status=SyncStatus.SYNCED, hubspot_engagement_id="9999")
    postgres.record_outcome(UUID(session_id), "run-a", outcome, [], None)
    assert session_row(db, session_id)["hubspot_engagement_id"] == "4242"


def test_unreachable_database_named_without_password() -> None:
    secret = "s3cret-db-password"
    resource = PostgresResource(
        database_url=f"postgresql://callsync:{secret}@127.0.0.1:1/calls", connect_timeout_seconds=1
    )
    try:
        with pytest.raises(ConnectionError) as raised:
            resource.find_due_sessions(10, WAIT)
    finally:
        resource.close()
    message = str(raised.value)
    assert "127.0.0.1:1, database calls, user callsync" in message
    assert "CALLSYNC_DATABASE_URL" in message
    assert secret not in message
