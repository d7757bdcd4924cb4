"""Child process of the benchmark: run the sync job until no call session is due, and time the loop.

The runner starts one of these per scenario and reads its peak memory when it exits, so the figure covers
the sync only: the dataset is generated and inserted by the runner, and the stand-in runs in another process.

    BENCH_DATABASE_URL=... python -m bench.sync_child --spec '{"standin_url": ...}' --output result.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from dagster import BetaWarning, DagsterInstance, mem_io_manager

from callsync_dagster.jobs import sync_calls_to_hubspot
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

warnings.filterwarnings("ignore", category=BetaWarning)

# Telemetry off: the benchmark must send nothing beyond 127.0.0.1.
DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def run_job_loop(spec: dict[str, Any], database_url: str) -> dict[str, Any]:
    """Run the job until a run claims no session, and return the runs' summaries and the loop's timing.

    `loop_seconds` ends with the last run that claimed sessions: the final run, which only finds that
    nothing is due, is timed separately as `confirm_seconds`.
    """
    resources = {
        "postgres": PostgresResource(database_url=database_url, db_schema=spec["schema"]),
        "hubspot": HubSpotResource(
            access_token=spec["token"],
            base_url=spec["standin_url"],
            requests_per_ten_seconds=spec["requests_per_ten_seconds"],
            searches_per_second=spec["searches_per_second"],
            # As definitions.py does: the limits live in the database, so consecutive runs share one window.
            rate_limit_database_url=database_url,
            rate_limit_db_schema=spec["schema"],
        ),
        "settings": CallSyncSettings(
            hubspot_batch_size=spec["hubspot_batch_size"], contact_search=spec["contact_search"]
        ),
        "io_manager": mem_io_manager,
    }
    run_config = {
        "ops": {"fetch": {"config": {"max_batch_size": spec["max_batch_size"]}}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    # Enough runs for every session at one batch per run, twice over, so a loop that stops making
    # progress ends instead of running for ever.
    max_runs = 2 * math.ceil(spec["sessions"] / spec["max_batch_size"]) + 10

    summaries: list[dict[str, Any]] = []
    failed_run_ids: list[str] = []
    stopped_at_max_runs = False
    with tempfile.TemporaryDirectory(prefix="callsync-bench-dagster-") as dagster_home:
        Path(dagster_home, "dagster.yaml").write_text(DAGSTER_YAML)
        os.environ["DAGSTER_HOME"] = dagster_home
        with DagsterInstance.get() as instance:
            started = time.monotonic()
            last_work_done = started
            while True:
                result = sync_calls_to_hubspot.execute_in_process(
                    instance=instance,
                    resources=resources,
                    run_config=run_config,
                    tags={"callsync/trigger": "bench"},
                    raise_on_error=False,
                )
                if not result.success:
                    failed_run_ids.append(result.run_id)
                    print(f"Run {result.run_id} failed. Its events are in this log, above this line.", file=sys.stderr)
                    last_work_done = time.monotonic()
                    break
                summary = result.output_for_node("write_back")
                summaries.append(summary)
                if summary["sessions"] == 0:
                    break
                last_work_done = time.monotonic()
                if len(summaries) >= max_runs:
                    stopped_at_max_runs = True
                    break
            finished = time.monotonic()

    return {
        "loop_seconds": last_work_done - started,
        "confirm_seconds": finished - last_work_done,
        "runs": len(summaries) + len(failed_run_ids),
        "run_summaries": summaries,
        "failed_run_ids": failed_run_ids,
        "stopped_at_max_runs": stopped_at_max_runs,
        "max_runs": max_runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Run the sync job until no session is due and write the timing to a JSON file."
    )
    parser.add_argument("--spec", required=True, help="the scenario as JSON (see bench/run.py)")
    parser.add_argument("--output", required=True, type=Path, help="JSON file to write the loop's results to")
    args = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL")
    if not database_url:
        print("BENCH_DATABASE_URL is missing: set it to the database URL, as bench/run.py does", file=sys.stderr)
        return 2
    result = run_job_loop(json.loads(args.spec), database_url)
    args.output.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
