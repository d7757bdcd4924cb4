"""Apply callsync's SQL migrations to a schema, recording which ones ran."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from callsync_dagster.db.schema_name import validate_schema_name

logger = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "callsync_dagster.db.migrations"
MIGRATIONS_TABLE = "callsync_schema_migrations"

# Any constant works; it only has to be the same for every callsync process migrating this database.
MIGRATION_ADVISORY_LOCK_KEY = 7_301_112_047


@dataclass(frozen=True)
class Migration:
    version: str
    sql_text: str


def load_migrations() -> list[Migration]:
    """Read the packaged migrations, ordered by their numeric file-name prefix."""
    folder = resources.files(MIGRATIONS_PACKAGE)
    migrations = [
        Migration(version=entry.name.removesuffix(".sql"), sql_text=entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(migrations, key=lambda migration: migration.version)


def apply_migrations(conninfo: str, schema: str = "public") -> list[str]:
    """Apply every migration not yet recorded in `schema`, each in its own transaction.

    Returns the versions applied by this call. Safe to run concurrently: a session-level advisory lock,
    taken before anything else, serialises migrators.
    """
    validate_schema_name(schema)
    schema_id = sql.Identifier(schema)

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_ADVISORY_LOCK_KEY,))
        try:
            applied_now = _apply_locked(conn, schema, schema_id)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_ADVISORY_LOCK_KEY,))
    return applied_now


def _apply_locked(conn: psycopg.Connection[Any], schema: str, schema_id: sql.Identifier) -> list[str]:
    """Apply the due migrations while this connection holds the migration lock."""
    applied_now: list[str] = []
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema_id))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        ).format(schema_id, sql.Identifier(MIGRATIONS_TABLE))
    )

    for migration in load_migrations():
        with conn.transaction():
            already_applied = conn.execute(
                sql.SQL("SELECT 1 FROM {}.{} WHERE version = %s").format(schema_id, sql.Identifier(MIGRATIONS_TABLE)),
                (migration.version,),
            ).fetchone()
            if already_applied:
                continue

            # SET LOCAL lasts until the end of this transaction, so the unqualified names in the SQL
            # files resolve to the target schema and nothing leaks into the session.
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(schema_id))
            conn.execute(migration.sql_text)  # type: ignore[arg-type]
            conn.execute(
                sql.SQL("INSERT INTO {}.{} (version) VALUES (%s)").format(schema_id, sql.Identifier(MIGRATIONS_TABLE)),
                (migration.version,),
            )
            applied_now.append(migration.version)
            logger.info("Applied migration %s to schema %s", migration.version, schema)

    return applied_now
