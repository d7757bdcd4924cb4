import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from callsync_dagster.core.models import SessionOutcome, SyncLogEntry, SyncStatus
from callsync_dagster.resources.postgres import PostgresResource
from tests.conftest import session_row, sync_log

WAIT = 120
LEASE = 30


def test_claim_takes_due_sessions(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    due = insert_session()
    claimed = postgres.claim_due_sessions("run-a", 10, WAIT, LEASE)
    assert [str(session.id) for session in claimed] == [due]
    assert claimed[0].sync_attempts == 1


def test_claim_skips_unended_and_synced(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    insert_session(ended_at=None)
    synced = insert_session()
    db.execute("UPDATE telavox_call_sessions SET sync_status = 'synced' WHERE id = %s", (synced,))
    assert postgres.claim_due_sessions("run-a", 10, WAIT, LEASE) == []


def test_claim_waits_for_transcript(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    recent_end = datetime.now(UTC) - timedelta(minutes=10)
    old_end = datetime.now(UTC) - timedelta(hours=3)
    insert_session(transcription_status="pending", ended_at=recent_end)
    stale = insert_session(transcription_status="in_progress", ended_at=old_end)
    failed = insert_session(transcription_status="failed", ended_at=recent_end)
    claimed = {str(session.id) for session in postgres.claim_due_sessions("run-a", 10, WAIT, LEASE)}
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
    claimed = {str(session.id) for session in postgres.claim_due_sessions("run-a", 10, WAIT, LEASE)}
    assert claimed == {due_now}


def test_second_claim_gets_nothing(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    insert_session()
    assert len(postgres.claim_due_sessions("run-a", 10, WAIT, LEASE)) == 1
    assert postgres.claim_due_sessions("run-b", 10, WAIT, LEASE) == []


def test_expired_lease_comes_back(
    postgres: PostgresResource, insert_session: Callable[..., str], db: psycopg.Connection[Any]
) -> None:
    session_id = insert_session()
    postgres.claim_due_sessions("crashed-run", 10, WAIT, LEASE)
    db.execute(
        "UPDATE telavox_call_sessions SET sync_next_attempt_at = now() - interval '1 second' WHERE id = %s",
        (session_id,),
    )
    reclaimed = postgres.claim_due_sessions("run-b", 10, WAIT, LEASE)
    assert [str(session.id) for session in reclaimed] == [session_id]
    assert reclaimed[0].sync_attempts == 2
    assert session_row(db, session_id)["sync_claim_run_id"] == "run-b"


def test_concurrent_claims_disjoint(postgres: PostgresResource, insert_session: Callable[..., str]) -> None:
    session_ids = {insert_session() for _ in range(40)}
    claims: dict[str, list[str]] = {}

    def claim(run_id: str) -> None:
        claims[run_id] = [str(s.id) for s in postgres.claim_due_sessions(run_id, 25, WAIT, LEASE)]

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
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE)
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
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE)
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
    postgres.claim_due_sessions("run-a", 10, WAIT, LEASE)
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
    db.execute(
        "INSERT INTO telavox_call_sessions (telavox_call_id, ended_at, sync_status, transcription_status)"
        " SELECT 'bulk-' || n, now() - interval '3 hours', CASE WHEN n % 50 = 0 THEN 'pending' ELSE 'synced' END,"
        " 'completed' FROM generate_series(1, 20000) AS n"
    )
    db.execute("ANALYZE telavox_call_sessions")
    plan = db.execute(
        "EXPLAIN SELECT id FROM telavox_call_sessions WHERE ended_at IS NOT NULL"
        " AND (sync_status IN ('pending', 'syncing') OR (sync_status = 'failed' AND sync_next_attempt_at IS NOT NULL))"
        " AND coalesce(sync_next_attempt_at, ended_at) <= now() ORDER BY coalesce(sync_next_attempt_at, ended_at)"
        " LIMIT 100"
    ).fetchall()
    plan_text = "\n".join(str(next(iter(row.values()))) for row in plan)
    assert "telavox_call_sessions_sync_due_idx" in plan_text
    assert "Seq Scan" not in plan_text
