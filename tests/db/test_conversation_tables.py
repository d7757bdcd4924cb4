"""Migration 0005: the legacy workflow's tables, their sync state and the due index, on real PostgreSQL."""

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from callsync_dagster.db.migrate import apply_migrations, load_migrations

MIGRATION = "0005_conversations"

SYNC_COLUMNS = {
    "sync_status",
    "sync_attempts",
    "sync_next_attempt_at",
    "sync_claim_run_id",
    "sync_claimed_at",
    "sync_reason",
    "sync_reason_code",
    "synced_at",
    "hubspot_contact_id",
    "hubspot_deal_id",
    "hubspot_note_id",
    "hubspot_task_id",
    "hubspot_deal_requested_at",
    "hubspot_note_requested_at",
    "hubspot_task_requested_at",
}

# The predicate of conversations_sync_due_idx, word for word, as the claim query and the sensor must write it.
DUE_CONVERSATIONS = """
    SELECT id FROM conversations
    WHERE status = 'done'
      AND (sync_status IN ('pending', 'syncing') OR (sync_status = 'failed' AND sync_next_attempt_at IS NOT NULL))
      AND coalesce(sync_next_attempt_at, created_at) <= now()
    ORDER BY coalesce(sync_next_attempt_at, created_at)
    LIMIT 100
"""


@pytest.fixture
def fresh_schema(database_url: str) -> Iterator[str]:
    schema = f"c_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _connect(database_url: str, schema: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, table),
    ).fetchall()
    return dict(rows)


def _row_security(conn: psycopg.Connection[Any], schema: str) -> dict[str, bool]:
    rows = conn.execute(
        "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = 'r'",
        (schema,),
    ).fetchall()
    return dict(rows)


def _migration_sql(version: str) -> str:
    return next(migration.sql_text for migration in load_migrations() if migration.version == version)


# ---------------------------------------------------------------------------------------------------------------
# A fresh schema
# ---------------------------------------------------------------------------------------------------------------


def test_fresh_schema_gets_tables(database_url: str, fresh_schema: str) -> None:
    applied = apply_migrations(database_url, fresh_schema)
    assert MIGRATION in applied

    with _connect(database_url, fresh_schema) as conn:
        conversations = _columns(conn, fresh_schema, "conversations")
        insights = _columns(conn, fresh_schema, "insights")
        history = _columns(conn, fresh_schema, "sync_history")
        security = _row_security(conn, fresh_schema)

    assert {
        "id": "uuid",
        "conversation_id": "text",
        "agent_id": "text",
        "user_id": "uuid",
        "status": "text",
        "transcript": "text",
        "summary": "text",
        "metadata": "jsonb",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    }.items() <= conversations.items()
    assert set(conversations) >= SYNC_COLUMNS
    assert {
        "conversation_id": "text",
        "sentiment": "text",
        "key_points": "ARRAY",
        "deal_stage": "text",
        "competitor_mentions": "ARRAY",
        "next_steps": "ARRAY",
    }.items() <= insights.items()
    assert set(history) == {
        "id",
        "conversation_id",
        "sync_type",
        "hubspot_id",
        "data",
        "status",
        "error_message",
        "created_at",
    }
    assert security["conversations"] is True
    assert security["insights"] is True
    assert security["sync_history"] is True


def test_new_conversation_pending(database_url: str, fresh_schema: str) -> None:
    apply_migrations(database_url, fresh_schema)
    with _connect(database_url, fresh_schema) as conn:
        row = conn.execute(
            "INSERT INTO conversations (conversation_id, status) VALUES ('conv_ny1', 'done')"
            " RETURNING sync_status, sync_attempts, hubspot_deal_id, hubspot_deal_requested_at"
        ).fetchone()
    assert row == ("pending", 0, None, None)


@pytest.mark.parametrize("status", ["pending", "syncing", "synced", "skipped", "failed"])
def test_sync_status_accepted(database_url: str, fresh_schema: str, status: str) -> None:
    apply_migrations(database_url, fresh_schema)
    with _connect(database_url, fresh_schema) as conn:
        conn.execute("INSERT INTO conversations (conversation_id, sync_status) VALUES ('conv_a', %s)", (status,))


@pytest.mark.parametrize("status", ["done", "SYNCED", ""])
def test_sync_status_rejected(database_url: str, fresh_schema: str, status: str) -> None:
    apply_migrations(database_url, fresh_schema)
    with (
        _connect(database_url, fresh_schema) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="conversations_sync_status_check"),
    ):
        conn.execute("INSERT INTO conversations (conversation_id, sync_status) VALUES ('conv_a', %s)", (status,))


def test_insights_reference_conversations(database_url: str, fresh_schema: str) -> None:
    apply_migrations(database_url, fresh_schema)
    with (
        _connect(database_url, fresh_schema) as conn,
        pytest.raises(psycopg.errors.ForeignKeyViolation),
    ):
        conn.execute("INSERT INTO insights (conversation_id, sentiment) VALUES ('conv_saknas', 'positive')")


# ---------------------------------------------------------------------------------------------------------------
# Idempotency
# ---------------------------------------------------------------------------------------------------------------


def test_migration_recorded_once(database_url: str, fresh_schema: str) -> None:
    apply_migrations(database_url, fresh_schema)
    assert apply_migrations(database_url, fresh_schema) == []


def test_sql_runs_twice(database_url: str, fresh_schema: str) -> None:
    # Running the file again must change nothing, even if the migration record is lost.
    apply_migrations(database_url, fresh_schema)
    with _connect(database_url, fresh_schema) as conn:
        conn.execute(
            "INSERT INTO conversations (conversation_id, status, sync_status, hubspot_deal_id)"
            " VALUES ('conv_1', 'done', 'failed', '9001')"
        )
        before = conn.execute("SELECT * FROM conversations").fetchall()
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(fresh_schema)))
            conn.execute(_migration_sql(MIGRATION))  # type: ignore[arg-type]
        after = conn.execute("SELECT * FROM conversations").fetchall()
        constraints = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'conversations_sync_status_check'"
            " AND conrelid = 'conversations'::regclass"
        ).fetchone()
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = 'conversations_sync_due_idx'",
            (fresh_schema,),
        ).fetchone()
    assert after == before
    assert constraints == (1,)
    assert indexes == (1,)


# ---------------------------------------------------------------------------------------------------------------
# An application database from before callsync
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def legacy_schema(database_url: str, fresh_schema: str) -> str:
    """The legacy application's tables with rows in them: its own columns only, and jsonb transcripts."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(fresh_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(fresh_schema)))
        conn.execute(
            "CREATE TABLE conversations (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
            " conversation_id text UNIQUE, agent_id text, user_id uuid, status text, transcript jsonb, summary text,"
            " metadata jsonb, created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now(),"
            " app_column text)"
        )
        conn.execute(
            "CREATE TABLE insights (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
            " conversation_id text REFERENCES conversations (conversation_id), sentiment text, key_points text[],"
            " deal_stage text, competitor_mentions text[], next_steps text[], created_at timestamptz DEFAULT now())"
        )
        conn.execute(
            "CREATE TABLE sync_history (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), conversation_id text,"
            " sync_type text, hubspot_id text, data jsonb, status text, error_message text,"
            " created_at timestamptz DEFAULT now())"
        )
        conn.execute("ALTER TABLE conversations ENABLE ROW LEVEL SECURITY")
        conn.execute(
            "INSERT INTO conversations (conversation_id, status, transcript, summary, updated_at, app_column) VALUES"
            " ('conv_klar', 'done', '[{\"role\": \"user\", \"message\": \"Hej\"}]', 'Offert', '2026-03-20 10:00+01',"
            "  'behåll'),"
            " ('conv_bara_affar', 'done', NULL, NULL, now(), NULL),"
            " ('conv_misslyckad', 'done', NULL, NULL, now(), NULL),"
            " ('conv_ny', 'done', NULL, NULL, now(), NULL),"
            " ('conv_pagar', 'in-progress', NULL, NULL, now(), NULL)"
        )
        conn.execute(
            "INSERT INTO insights (conversation_id, sentiment, key_points) VALUES"
            " ('conv_klar', 'positive', ARRAY['Tak på 80 kvm'])"
        )
        conn.execute(
            "INSERT INTO sync_history (conversation_id, sync_type, hubspot_id, status, error_message, created_at)"
            " VALUES"
            " ('conv_klar', 'contact', '501', 'success', NULL, '2026-03-20 10:01+01'),"
            " ('conv_klar', 'deal', '9001', 'success', NULL, '2026-03-20 10:02+01'),"
            " ('conv_klar', 'note', '7001', 'SUCCESS', NULL, '2026-03-20 10:03+01'),"
            " ('conv_klar', 'task', '8001', 'success', NULL, '2026-03-20 10:04+01'),"
            " ('conv_bara_affar', 'Deal', '9002', 'success', NULL, '2026-03-20 11:00+01'),"
            " ('conv_bara_affar', 'note', NULL, 'error', 'HubSpot 400', '2026-03-20 11:01+01'),"
            " ('conv_misslyckad', 'deal', NULL, 'error', 'HubSpot 502', '2026-03-20 12:00+01'),"
            " ('conv_misslyckad', 'deal', '', 'success', NULL, '2026-03-20 12:01+01')"
        )
    return fresh_schema


def test_existing_tables_and_rows_kept(database_url: str, legacy_schema: str) -> None:
    apply_migrations(database_url, legacy_schema)

    with _connect(database_url, legacy_schema) as conn:
        columns = _columns(conn, legacy_schema, "conversations")
        security = _row_security(conn, legacy_schema)
        app_values = conn.execute(
            "SELECT transcript, summary, app_column FROM conversations WHERE conversation_id = 'conv_klar'"
        ).fetchone()
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM insights),"
            " (SELECT count(*) FROM sync_history)"
        ).fetchone()

    assert columns["transcript"] == "jsonb"
    assert "app_column" in columns
    assert set(columns) >= SYNC_COLUMNS
    assert app_values == ([{"role": "user", "message": "Hej"}], "Offert", "behåll")
    assert counts == (5, 1, 8)
    # Row-level security is left as the application set it.
    assert security["conversations"] is True
    assert security["insights"] is False
    assert security["sync_history"] is False


@pytest.mark.parametrize(
    ("conversation_id", "expected"),
    [
        ("conv_klar", ("synced", "501", "9001", "7001", "8001")),
        ("conv_bara_affar", ("pending", None, "9002", None, None)),
        ("conv_misslyckad", ("pending", None, None, None, None)),
        ("conv_ny", ("pending", None, None, None, None)),
        ("conv_pagar", ("pending", None, None, None, None)),
    ],
    ids=[
        "deal-and-note-synced",
        "deal-only-stays-pending-with-deal-id",
        "failed-and-empty-ids-ignored",
        "no-history-pending",
        "not-done-pending",
    ],
)
def test_old_worker_sync_kept(database_url: str, legacy_schema: str, conversation_id: str, expected: tuple) -> None:
    apply_migrations(database_url, legacy_schema)
    with _connect(database_url, legacy_schema) as conn:
        row = conn.execute(
            "SELECT sync_status, hubspot_contact_id, hubspot_deal_id, hubspot_note_id, hubspot_task_id, synced_at"
            " FROM conversations WHERE conversation_id = %s",
            (conversation_id,),
        ).fetchone()
    assert row is not None
    assert row[:5] == expected
    assert (row[5] is not None) is (expected[0] == "synced")


def test_service_role_gets_policy(database_url: str, fresh_schema: str) -> None:
    # CREATE ROLE is transactional: the role and every change below are rolled back, so the shared
    # server is left as it was.
    with psycopg.connect(database_url) as conn:
        try:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'service_role'").fetchone() is None:
                conn.execute("CREATE ROLE service_role NOLOGIN")
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(fresh_schema)))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(fresh_schema)))
            for migration in load_migrations():
                conn.execute(migration.sql_text)  # type: ignore[arg-type]
            policies = conn.execute(
                "SELECT tablename FROM pg_policies WHERE schemaname = %s AND policyname = 'callsync_service_role_all'",
                (fresh_schema,),
            ).fetchall()
        finally:
            conn.rollback()
    assert {"conversations", "insights", "sync_history"} <= {row[0] for row in policies}


# ---------------------------------------------------------------------------------------------------------------
# The due index
# ---------------------------------------------------------------------------------------------------------------


def test_due_query_uses_index(database_url: str, fresh_schema: str) -> None:
    apply_migrations(database_url, fresh_schema)
    with _connect(database_url, fresh_schema) as conn:
        # Many synced conversations and a few that are due, as in a deployment that has run for a while.
        conn.execute(
            "INSERT INTO conversations (conversation_id, status, sync_status, created_at)"
            " SELECT 'conv_synkad_' || n, 'done', 'synced', now() - make_interval(mins => n)"
            " FROM generate_series(1, 20000) AS n"
        )
        conn.execute(
            "INSERT INTO conversations (conversation_id, status, sync_status, sync_next_attempt_at, created_at) VALUES"
            " ('conv_vantar', 'done', 'pending', NULL, now() - interval '5 minutes'),"
            " ('conv_omforsok', 'done', 'failed', now() - interval '1 minute', now() - interval '2 hours'),"
            " ('conv_senare', 'done', 'failed', now() + interval '1 hour', now() - interval '3 hours'),"
            " ('conv_slutgiltigt_fel', 'done', 'failed', NULL, now() - interval '4 hours'),"
            " ('conv_pagar', 'processing', 'pending', NULL, now() - interval '6 minutes'),"
            " ('conv_hoppad', 'done', 'skipped', NULL, now() - interval '7 minutes')"
        )
        conn.execute("ANALYZE conversations")

        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + DUE_CONVERSATIONS).fetchall())
        due = conn.execute(
            "SELECT conversation_id FROM conversations WHERE id IN (" + DUE_CONVERSATIONS + ")"
            " ORDER BY coalesce(sync_next_attempt_at, created_at)"
        ).fetchall()

    assert "conversations_sync_due_idx" in plan, plan
    assert [row[0] for row in due] == ["conv_vantar", "conv_omforsok"]
