"""`make bench`, orchestration part: seconds from a call session becoming eligible to its CALL in HubSpot.

A real `dagster-daemon` runs the code location with default settings (sensor every 30 s, Dagster's default
run queue) over a Postgres-backed instance, and the HubSpot stand-in runs in a process of its own with
HubSpot's Free limits. Call sessions arrive steadily, each eligible the moment it is inserted (ended, with
its transcript). The latency of a session is the CALL's `createdAt` in the stand-in minus the insert time.
The median, 95th percentile and maximum are printed as `latency.seconds_p95: value` lines.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg
import yaml
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.run import LOG_DIR, resolve_database_url
from bench.standin_process import StandinProcess
from callsync_dagster.db.migrate import apply_migrations
from tests.daemon.harness import DaemonProcess, psycopg2_url

SCHEMA = "callsync_bench_latency"
DAGSTER_DATABASE = "callsync_bench_dagster"
STANDIN_TOKEN = "bench-latency-token"
SESSIONS = int(os.environ.get("BENCH_LATENCY_SESSIONS", "300"))
ARRIVAL_SECONDS = float(os.environ.get("BENCH_LATENCY_ARRIVAL_SECONDS", "180"))
TARGET_P95_SECONDS = 60.0


def prepare(database_url: str) -> str:
    """Migrate the bench schema, recreate the Dagster database, and return the latter's URL."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DAGSTER_DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DAGSTER_DATABASE)))
    apply_migrations(database_url, SCHEMA)
    return make_conninfo(database_url, dbname=DAGSTER_DATABASE)


def write_default_instance(dagster_home: Path, dagster_url: str) -> None:
    """Postgres storage and run monitoring; the run queue and everything else at Dagster's defaults."""
    config = {
        "storage": {"postgres": {"postgres_url": psycopg2_url(dagster_url)}},
        "run_monitoring": {"enabled": True, "max_runtime_seconds": 3600},
        "telemetry": {"enabled": False},
    }
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def insert_arriving_sessions(database_url: str) -> dict[str, datetime]:
    """Insert SESSIONS eligible call sessions evenly over ARRIVAL_SECONDS; return each call id's insert time."""
    inserted: dict[str, datetime] = {}
    interval = ARRIVAL_SECONDS / SESSIONS
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        for index in range(SESSIONS):
            call_id = f"latency-{uuid.uuid4().hex[:12]}"
            row = conn.execute(
                "INSERT INTO telavox_call_sessions (telavox_call_id, direction, from_number, to_number, agent_user_id,"
                " started_at, answered_at, ended_at, transcription_status, summary)"
                " VALUES (%s, 'INBOUND', %s, '08-555 123 45', 'anna.agent@example.se', now() - interval '3 minutes',"
                " now() - interval '170 seconds', now(), 'completed', 'Kunden ringde om offerten.')"
                " RETURNING now() AS inserted_at",
                (call_id, f"070-{index // 10000 % 1000:03d} {index % 10000:04d}"),
            ).fetchone()
            assert row is not None
            inserted[call_id] = row[0]
            time.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
    return inserted


def main() -> int:
    database_url = resolve_database_url()
    if database_url is None:
        return 2
    print(f"== latency: {SESSIONS} sessions arriving over {ARRIVAL_SECONDS:g} s, dagster-daemon with default settings")
    dagster_url = prepare(database_url)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    standin = StandinProcess(LOG_DIR / "latency-standin.log", STANDIN_TOKEN, 100, 5)
    with tempfile.TemporaryDirectory(prefix="callsync-bench-home-") as home, standin:
        write_default_instance(Path(home), dagster_url)
        environment = {
            **os.environ,
            "DAGSTER_HOME": home,
            "CALLSYNC_DATABASE_URL": database_url,
            "CALLSYNC_DB_SCHEMA": SCHEMA,
            "HUBSPOT_ACCESS_TOKEN": STANDIN_TOKEN,
            "HUBSPOT_BASE_URL": standin.url,
        }
        daemon = DaemonProcess(environment, LOG_DIR / "latency-daemon.log")
        try:
            inserted = insert_arriving_sessions(database_url)

            def all_created() -> dict[str, str] | None:
                calls = standin.objects("calls", ("hs_call_external_id",))
                created = {call["properties"]["hs_call_external_id"]: call["createdAt"] for call in calls}
                return created if set(inserted) <= set(created) else None

            created = daemon.wait_until(all_created, 300, f"CALLs for all {SESSIONS} sessions")
        finally:
            daemon.stop()

    latencies = [
        (datetime.fromisoformat(created[call_id].replace("Z", "+00:00")) - inserted_at).total_seconds()
        for call_id, inserted_at in inserted.items()
    ]
    median = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DAGSTER_DATABASE)))

    verdict = "met" if p95 < TARGET_P95_SECONDS else "MISSED"
    print(f"Target: {verdict}   latency.seconds_p95 = {p95:.1f} < {TARGET_P95_SECONDS:g}")
    print(f"latency.sessions: {len(latencies)}")
    print(f"latency.seconds_median: {median:.1f}")
    print(f"latency.seconds_p95: {p95:.1f}")
    print(f"latency.seconds_max: {max(latencies):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
