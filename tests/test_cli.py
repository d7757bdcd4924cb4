import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

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
    assert f"Applied 4 migrations to schema {schema}" in first.stdout
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
