import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from callsync_dagster.db.migrate import apply_migrations, load_migrations
from callsync_dagster.db.schema_name import validate_schema_name


@pytest.fixture
def fresh_schema(database_url: str) -> Iterator[str]:
    schema = f"m_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, table),
    ).fetchall()
    return {row[0] for row in rows}


def test_migrations_recorded_once(database_url: str, fresh_schema: str) -> None:
    first = apply_migrations(database_url, fresh_schema)
    second = apply_migrations(database_url, fresh_schema)
    assert first == [migration.version for migration in load_migrations()]
    assert second == []
    with psycopg.connect(database_url) as conn:
        recorded = conn.execute(
            sql.SQL("SELECT version FROM {} ORDER BY version").format(
                sql.Identifier(fresh_schema, "callsync_schema_migrations")
            )
        ).fetchall()
    assert [row[0] for row in recorded] == first


def test_call_intelligence_schema_has_rls(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS call_intelligence CASCADE")
    try:
        apply_migrations(database_url, "call_intelligence")
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'call_intelligence' AND c.relkind = 'r'"
            ).fetchall()
        security = dict(rows)
        assert security["telavox_call_sessions"] is True
        assert security["transcriptions"] is True
        assert security["callsync_sync_log"] is True
        assert security["blocked_numbers"] is True
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS call_intelligence CASCADE")


def test_existing_application_table_kept(database_url: str, fresh_schema: str) -> None:
    # An application database from before callsync: its own columns only, with rows in it.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(fresh_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(fresh_schema)))
        conn.execute(
            "CREATE TABLE telavox_call_sessions (id uuid PRIMARY KEY, telavox_call_id text NOT NULL UNIQUE,"
            " direction text, from_number text, to_number text, ended_at timestamptz,"
            " hubspot_engagement_id text, transcript text, updated_at timestamptz, extra_app_column text)"
        )
        conn.execute(
            "INSERT INTO telavox_call_sessions VALUES"
            " ('00000000-0000-0000-0000-000000000001', 'A1', 'INBOUND', '0701234567', '201', now(), '9001',"
            "  'old', now(), 'keep me'),"
            " ('00000000-0000-0000-0000-000000000002', 'A2', 'INBOUND', '0701234568', '201', now(), NULL,"
            "  NULL, now(), 'keep me too')"
        )

    apply_migrations(database_url, fresh_schema)

    with psycopg.connect(database_url) as conn:
        columns = _columns(conn, fresh_schema, "telavox_call_sessions")
        rows = conn.execute(
            sql.SQL("SELECT telavox_call_id, extra_app_column, sync_status, transcript FROM {} ORDER BY 1").format(
                sql.Identifier(fresh_schema, "telavox_call_sessions")
            )
        ).fetchall()
    assert {
        "sync_status",
        "sync_attempts",
        "sync_next_attempt_at",
        "sync_claim_run_id",
        "hubspot_company_id",
    } <= columns
    assert "extra_app_column" in columns
    assert rows[0] == ("A1", "keep me", "synced", "old")
    assert rows[1] == ("A2", "keep me too", "pending", None)


def test_sync_log_table_created(database_url: str, fresh_schema: str) -> None:
    apply_migrations(database_url, fresh_schema)
    with psycopg.connect(database_url) as conn:
        columns = _columns(conn, fresh_schema, "callsync_sync_log")
    assert {
        "call_session_id",
        "run_id",
        "action",
        "hubspot_object_id",
        "hubspot_correlation_id",
        "error",
        "created_at",
    } <= columns


@pytest.mark.parametrize("name", ["public", "call_intelligence", "_x1"])
def test_schema_name_accepted(name: str) -> None:
    assert validate_schema_name(name) == name


@pytest.mark.parametrize("name", ["", "Public", "a;drop", 'x"y', "1abc", "a" * 64, "call intelligence"])
def test_schema_name_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="Invalid database schema name"):
        validate_schema_name(name)
