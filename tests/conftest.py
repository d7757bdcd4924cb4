"""Fixtures shared by every test: a throwaway PostgreSQL database, the HubSpot stand-in, resources.

Everything here is real: PostgreSQL on 127.0.0.1:5432 (or TEST_DATABASE_URL, or an embedded server when
neither accepts connections), the stand-in over HTTP on 127.0.0.1, and a Dagster instance on disk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, instance_for_test
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from callsync_dagster.db.embedded import database_answers, start_embedded_postgres
from callsync_dagster.db.migrate import apply_migrations
from callsync_dagster.hubspot_standin import StandinServer, StandinState
from callsync_dagster.jobs import sync_calls_to_hubspot
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

# Sent to the local stand-in only; it is not a HubSpot credential.
STANDIN_TOKEN = "standin-test-token"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# PostgreSQL


@pytest.fixture(scope="session")
def database_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)
    if database_answers(url):
        return url
    return start_embedded_postgres(Path(tmp_path_factory.mktemp("embedded-postgres")))


@pytest.fixture(scope="session")
def database_url(database_server_url: str) -> Iterator[str]:
    """A database created for this test session and dropped after it."""
    name = f"callsync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(database_server_url, dbname=name)
    with psycopg.connect(database_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_schema(database_url: str) -> Iterator[str]:
    """A freshly migrated schema per test, so tests never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    apply_migrations(database_url, schema)
    yield schema
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def db(database_url: str, db_schema: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct autocommit connection for arranging and checking rows."""
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(db_schema)))
        yield conn


@pytest.fixture
def postgres(database_url: str, db_schema: str) -> Iterator[PostgresResource]:
    resource = PostgresResource(database_url=database_url, db_schema=db_schema)
    yield resource
    resource.close()


# HubSpot stand-in


@pytest.fixture(scope="session")
def standin_server() -> Iterator[StandinServer]:
    with StandinServer(
        StandinState(tokens=[STANDIN_TOKEN], rate_limit_per_interval=1000, search_per_second=100)
    ) as server:
        yield server


@pytest.fixture
def standin(standin_server: StandinServer) -> StandinServer:
    """The stand-in, emptied before each test."""
    httpx.post(f"{standin_server.url}/_standin/reset").raise_for_status()
    return standin_server


@pytest.fixture
def hubspot(standin: StandinServer) -> HubSpotResource:
    return HubSpotResource(
        access_token=STANDIN_TOKEN,
        base_url=standin.url,
        timeout_seconds=5.0,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
        requests_per_ten_seconds=1000,
        searches_per_second=100,
    )


@pytest.fixture
def settings() -> CallSyncSettings:
    return CallSyncSettings()


def standin_objects(server: StandinServer, object_type: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/_standin/objects/{object_type}")
    response.raise_for_status()
    body = response.json()
    return body["results"] if isinstance(body, dict) else body


def seed_standin(server: StandinServer, payload: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/_standin/seed", json=payload)
    response.raise_for_status()
    return response.json()


# Call sessions


@pytest.fixture
def insert_session(db: psycopg.Connection[Any]) -> Callable[..., str]:
    """Insert a call session and return its id; by default an inbound call picked up, ended an hour ago."""

    def insert(transcription: dict[str, Any] | None = None, **columns: Any) -> str:
        ended = datetime.now(UTC) - timedelta(hours=1)
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "telavox_call_id": f"LID-{uuid.uuid4().hex[:10]}",
            "direction": "INBOUND",
            "from_number": "070-123 45 67",
            "to_number": "08-555 123 45",
            "agent_user_id": "anna.agent@example.se",
            "started_at": ended - timedelta(minutes=3),
            "answered_at": ended - timedelta(minutes=2, seconds=50),
            "ended_at": ended,
            "transcription_status": "completed",
        }
        values.update(columns)
        if isinstance(values.get("insights_json"), dict):
            values["insights_json"] = Jsonb(values["insights_json"])
        names = list(values)
        db.execute(
            sql.SQL("INSERT INTO telavox_call_sessions ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names))
            ),
            [values[name] for name in names],
        )
        if transcription is not None:
            labels = transcription.get("speaker_labels")
            db.execute(
                "INSERT INTO transcriptions (call_session_id, full_text, speaker_labels, summary, language, created_at)"
                " VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))",
                (
                    values["id"],
                    transcription.get("full_text", ""),
                    Jsonb(labels) if labels is not None else None,
                    transcription.get("summary"),
                    transcription.get("language", "sv"),
                    transcription.get("created_at"),
                ),
            )
        return str(values["id"])

    return insert


def session_row(db: psycopg.Connection[Any], session_id: str) -> dict[str, Any]:
    row = db.execute("SELECT * FROM telavox_call_sessions WHERE id = %s", (session_id,)).fetchone()
    assert row is not None, f"call session {session_id} not found"
    return row


def sync_log(db: psycopg.Connection[Any], session_id: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT * FROM callsync_sync_log WHERE call_session_id = %s ORDER BY id", (session_id,)
    ).fetchall()


# Dagster


@pytest.fixture(scope="session")
def dagster_instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def run_sync_job(
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> Callable[..., ExecuteInProcessResult]:
    """Run the call sync job in process on a real instance; keyword arguments become the fetch config."""

    def run(hubspot_resource: HubSpotResource | None = None, **fetch_config: Any) -> ExecuteInProcessResult:
        return sync_calls_to_hubspot.execute_in_process(
            run_config={"ops": {"fetch": {"config": fetch_config}}},
            resources={"postgres": postgres, "hubspot": hubspot_resource or hubspot, "settings": settings},
            instance=dagster_instance,
            raise_on_error=False,
        )

    return run
