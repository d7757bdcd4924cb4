import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import session_row, sync_log

CALLSYNC = str(Path(sys.executable).with_name("callsync"))


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"cli_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_migrate_applies_then_nothing_due(database_url: str, schema: str) -> None:
    environment = {"CALLSYNC_DATABASE_URL": database_url, "PATH": str(Path(CALLSYNC).parent)}
    first = subprocess.run([CALLSYNC, "migrate", "--schema", schema], env=environment, capture_output=True, text=True)
    second = subprocess.run([CALLSYNC, "migrate", "--schema", schema], env=environment, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert f"Applied 5 migrations to schema {schema}" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "none were due" in second.stdout


def test_migrate_without_url_exits_2() -> None:
    completed = subprocess.run(
        [CALLSYNC, "migrate"], env={"PATH": str(Path(CALLSYNC).parent)}, capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert "CALLSYNC_DATABASE_URL is not set" in completed.stderr


def test_migrate_rejects_bad_schema(database_url: str) -> None:
    environment = {"CALLSYNC_DATABASE_URL": database_url, "PATH": str(Path(CALLSYNC).parent)}
    completed = subprocess.run(
        [CALLSYNC, "migrate", "--schema", "bad;name"], env=environment, capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("Invalid database schema name 'bad;name'")


def _fail_for_good(db: psycopg.Connection[Any], session_id: str, reason: str) -> None:
    db.execute(
        "UPDATE telavox_call_sessions SET sync_status = 'failed', sync_attempts = 5, sync_next_attempt_at = NULL,"
        " sync_reason_code = 'hubspot_call_rejected', sync_reason = %s WHERE id = %s",
        (reason, session_id),
    )


def test_failed_lists_parked_sessions(
    database_url: str, db_schema: str, db: psycopg.Connection[Any], insert_session: Callable[..., str]
) -> None:
    parked = insert_session()
    insert_session()
    _fail_for_good(db, parked, "Property values were not valid: hs_call_title")
    environment = {"CALLSYNC_DATABASE_URL": database_url, "PATH": str(Path(CALLSYNC).parent)}

    listed = subprocess.run(
        [CALLSYNC, "failed", "--schema", db_schema], env=environment, capture_output=True, text=True
    )

    assert listed.returncode == 0, listed.stderr
    assert "1 call sessions failed for good" in listed.stdout
    assert parked in listed.stdout
    assert "hubspot_call_rejected: Property values were not valid: hs_call_title" in listed.stdout


@pytest.mark.parametrize("how", ["by-id", "all-failed"])
def test_replay_requeues_failed_sessions(
    database_url: str, db_schema: str, db: psycopg.Connection[Any], insert_session: Callable[..., str], how: str
) -> None:
    parked = insert_session()
    synced = insert_session()
    _fail_for_good(db, parked, "HubSpot rejected the create")
    db.execute("UPDATE telavox_call_sessions SET sync_status = 'synced' WHERE id = %s", (synced,))
    chosen = [parked, synced] if how == "by-id" else ["--all-failed"]
    environment = {"CALLSYNC_DATABASE_URL": database_url, "PATH": str(Path(CALLSYNC).parent)}

    replayed = subprocess.run(
        [CALLSYNC, "replay", "--schema", db_schema, *chosen], env=environment, capture_output=True, text=True
    )

    assert replayed.returncode == 0, replayed.stderr
    assert "Requeued 1 failed call sessions" in replayed.stdout
    row = session_row(db, parked)
    assert (row["sync_status"], row["sync_attempts"], row["sync_next_attempt_at"]) == ("pending", 0, None)
    assert session_row(db, synced)["sync_status"] == "synced"
    assert [entry["action"] for entry in sync_log(db, parked)] == ["replay_requested"]
    if how == "by-id":
        assert f"Not failed, so left alone: {synced}" in replayed.stderr


def test_replay_rejects_bad_id(database_url: str) -> None:
    environment = {"CALLSYNC_DATABASE_URL": database_url, "PATH": str(Path(CALLSYNC).parent)}

    replayed = subprocess.run([CALLSYNC, "replay", "not-a-uuid"], env=environment, capture_output=True, text=True)

    assert replayed.returncode == 2
    assert "Invalid call session id 'not-a-uuid'" in replayed.stderr


def test_replay_needs_ids_or_all(database_url: str) -> None:
    environment = {"CALLSYNC_DATABASE_URL": database_url, "PATH": str(Path(CALLSYNC).parent)}

    replayed = subprocess.run([CALLSYNC, "replay"], env=environment, capture_output=True, text=True)

    assert replayed.returncode == 2
    assert "session_ids" in replayed.stderr or "--all-failed" in replayed.stderr
