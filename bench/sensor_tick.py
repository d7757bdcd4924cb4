"""`make bench`, orchestration part: how long one tick of the call sessions sensor takes on 1,000,000 calls.

The schema `callsync_bench_sensor` gets a million call sessions, nearly all synced, with a few hundred due,
waiting for a transcript or waiting for a retry, as a table looks after months of use. The sensor is then
evaluated the way the daemon does it (resources built, database queried, run requests returned) many times,
and the median and 95th percentile are printed as `sensor.tick_ms_median: value` lines.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import psycopg
from dagster import build_sensor_context, instance_for_test
from psycopg import sql

from bench.run import resolve_database_url
from callsync_dagster.db.migrate import apply_migrations
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from callsync_dagster.sensors.call_sessions import call_sessions_due_sensor

SCHEMA = "callsync_bench_sensor"
ROWS = int(os.environ.get("BENCH_SENSOR_ROWS", "1000000"))
TICKS = int(os.environ.get("BENCH_SENSOR_TICKS", "50"))
TARGET_MS = 200.0


def fill_table(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    apply_migrations(database_url, SCHEMA)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        # Every 2,000th call is due, every 3,000th waits for its transcript, every 5,000th for a retry.
        conn.execute(
            "INSERT INTO telavox_call_sessions"
            " (telavox_call_id, direction, from_number, started_at, ended_at, transcription_status,"
            "  sync_status, sync_next_attempt_at)"
            " SELECT 'bench-' || n, 'INBOUND', '0701234567', now() - make_interval(mins => n %% 50000),"
            "  now() - make_interval(mins => n %% 50000) + interval '3 minutes',"
            "  CASE WHEN n %% 3000 = 0 THEN 'processing' ELSE 'completed' END,"
            "  CASE WHEN n %% 2000 = 0 OR n %% 3000 = 0 THEN 'pending' WHEN n %% 5000 = 0 THEN 'failed' ELSE 'synced' END,"
            "  CASE WHEN n %% 5000 = 0 AND n %% 2000 <> 0 AND n %% 3000 <> 0 THEN now() + interval '1 hour' END"
            " FROM generate_series(1, %s) AS n",
            (ROWS,),
        )
        conn.execute("ANALYZE telavox_call_sessions")


def time_ticks(database_url: str) -> list[float]:
    postgres = PostgresResource(database_url=database_url, db_schema=SCHEMA)
    settings = CallSyncSettings()
    durations = []
    with instance_for_test() as instance:
        for _ in range(TICKS):
            started = time.perf_counter()
            with build_sensor_context(
                instance=instance, resources={"postgres": postgres, "settings": settings}
            ) as context:
                result = call_sessions_due_sensor.evaluate_tick(context)
            durations.append((time.perf_counter() - started) * 1000)
            if not result.run_requests:
                raise RuntimeError(f"the sensor requested no run: {result.skip_message}")
    postgres.close()
    return durations


def main() -> int:
    database_url = resolve_database_url()
    if database_url is None:
        return 2
    print(f"== sensor tick: {ROWS:,} call sessions, {TICKS} ticks")
    started = time.monotonic()
    fill_table(database_url)
    print(f"   filled the table in {time.monotonic() - started:.0f} s")
    durations = time_ticks(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))

    median = statistics.median(durations)
    p95 = statistics.quantiles(durations, n=20)[-1]
    verdict = "met" if p95 < TARGET_MS else "MISSED"
    print(f"Target: {verdict}   sensor.tick_ms_p95 = {p95:.1f} < {TARGET_MS:g}")
    print(f"sensor.rows: {ROWS}")
    print(f"sensor.tick_ms_median: {median:.1f}")
    print(f"sensor.tick_ms_p95: {p95:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
