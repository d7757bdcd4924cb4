"""`make bench`: sync generated call sessions into the rate-limited HubSpot stand-in and print the figures.

For each scenario the runner recreates the schema `callsync_bench`, inserts the dataset, starts the stand-in
in a process of its own and seeds it, then runs the sync job in a child process until no session is due.
It reads the child's peak memory when the child exits, the request counts and stored objects from the
stand-in, and the outcomes from the database. The output ends with one `scenario.figure: value` line per
figure, and the figures are also written to bench/results/. The exit code is 1 when a correctness check
fails, 2 when the benchmark could not run, and 0 otherwise, whether or not the targets are met.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from bench.config import (
    BENCH_SCHEMA,
    REQUESTS_PER_TEN_SECONDS,
    SEARCHES_PER_SECOND,
    STANDIN_TOKEN,
    BenchConfig,
    Scenario,
    parse_config,
)
from bench.dataset import build_dataset, insert_dataset
from bench.figures import TARGETS, check_correctness, compute_figures, read_session_rows
from bench.standin_process import StandinProcess
from callsync_dagster.db.embedded import database_answers, start_embedded_postgres
from callsync_dagster.db.migrate import apply_migrations

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "bench" / "results"
LOG_DIR = RESULTS_DIR / "logs"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Rows of the table, in order. Every figure is printed as a `name: value` line, whether or not it is a row here.
TABLE_ROWS = (
    "sessions",
    "sessions_synced",
    "sessions_skipped",
    "sessions_failed",
    "failed_by_429",
    "hubspot_requests",
    "general_requests",
    "search_requests",
    "responses_429",
    "requests_per_synced_call",
    "dagster_runs",
    "loop_seconds",
    "calls_synced_per_second",
    "allowed_calls_per_second",
    "rate_limit_utilisation",
    "peak_rss_mb",
    "check_failures",
)


@dataclass
class ScenarioResult:
    scenario: Scenario
    figures: dict[str, Any] = field(default_factory=dict)
    check_failures: list[str] = field(default_factory=list)
    loop: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------


def resolve_database_url() -> str | None:
    """Return BENCH_DATABASE_URL, else the server on 127.0.0.1:5432, else an embedded server under .pgdata/.

    Returns None, with the reason printed, when BENCH_DATABASE_URL is set but its server refuses connections.
    """
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        if not database_answers(url):
            print("The database in BENCH_DATABASE_URL does not accept connections: check the URL", file=sys.stderr)
            return None
        print(f"Using the database from BENCH_DATABASE_URL, schema {BENCH_SCHEMA}")
        return url
    if database_answers(DEFAULT_DATABASE_URL):
        print(f"Using PostgreSQL on 127.0.0.1:5432, schema {BENCH_SCHEMA}")
        return DEFAULT_DATABASE_URL
    # The embedded server stops when this process exits.
    url = start_embedded_postgres(PROJECT_DIR / ".pgdata")
    print(f"Started embedded PostgreSQL with its data in .pgdata/, schema {BENCH_SCHEMA}")
    return url


def recreate_schema(database_url: str) -> None:
    drop_schema(database_url)
    apply_migrations(database_url, BENCH_SCHEMA)


def drop_schema(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(BENCH_SCHEMA)))


# ---------------------------------------------------------------------------------------------------------------
# One scenario
# ---------------------------------------------------------------------------------------------------------------


def run_scenario(scenario: Scenario, config: BenchConfig, database_url: str) -> ScenarioResult:
    """Prepare the data, run the sync in a child process and gather the figures and checks of one scenario."""
    result = ScenarioResult(scenario)
    started = time.monotonic()
    print(f"\n== {scenario.name}: {scenario.description}, {scenario.sessions} sessions", flush=True)

    recreate_schema(database_url)
    dataset = build_dataset(scenario.sessions, config.seed, scenario.transcript_chars)
    with psycopg.connect(database_url) as conn:
        insert_dataset(conn, BENCH_SCHEMA, dataset)
    print(
        f"   inserted {len(dataset.sessions)} sessions: {dataset.count('known')} from {dataset.seeded_contacts} "
        f"known contacts, {dataset.count('new')} from {dataset.new_numbers} new numbers, "
        f"{len(dataset.sessions) - dataset.count('known') - dataset.count('new')} to skip "
        f"({time.monotonic() - started:.0f} s)",
        flush=True,
    )

    standin = StandinProcess(
        LOG_DIR / f"{scenario.name}-standin.log", STANDIN_TOKEN, REQUESTS_PER_TEN_SECONDS, SEARCHES_PER_SECOND
    )
    with standin:
        standin.seed(dataset.standin_seed)
        print(f"   stand-in on {standin.url} seeded; syncing (log: {_relative(LOG_DIR)}/{scenario.name}-sync.log)")
        exit_code, peak_rss_mb = run_sync_child(scenario, standin.url, database_url)
        result.loop = _read_loop_output(scenario)
        if exit_code != 0:
            result.check_failures.append(
                f"the sync process exited with code {exit_code}. Read {_relative(LOG_DIR)}/{scenario.name}-sync.log"
            )
        request_counts = standin.request_counts()
        # Only the properties the checks read: whole CALL bodies would make a response of hundreds of MB.
        calls = standin.objects("calls", ("hs_call_external_id",))
        contacts = standin.objects("contacts", ("phone", "mobilephone"))

    rows = read_session_rows(database_url, BENCH_SCHEMA)
    if result.loop:
        result.figures = compute_figures(rows, request_counts, result.loop, peak_rss_mb)
        result.check_failures += check_correctness(dataset, rows, calls, contacts, result.loop)
    result.figures["check_failures"] = len(result.check_failures)
    print(f"   done in {time.monotonic() - started:.0f} s", flush=True)
    return result


def run_sync_child(scenario: Scenario, standin_url: str, database_url: str) -> tuple[int, float]:
    """Run bench.sync_child for the scenario and return its exit code and peak resident memory in MB (10^6 bytes).

    os.wait4 returns the resource usage of this one child, so the peak is the sync's own and not the
    largest of all scenarios, as getrusage(RUSAGE_CHILDREN) would give.
    """
    spec = {
        "schema": BENCH_SCHEMA,
        "token": STANDIN_TOKEN,
        "standin_url": standin_url,
        "requests_per_ten_seconds": REQUESTS_PER_TEN_SECONDS,
        "searches_per_second": SEARCHES_PER_SECOND,
        "hubspot_batch_size": scenario.hubspot_batch_size,
        "contact_search": scenario.contact_search,
        "max_batch_size": scenario.max_batch_size,
        "sessions": scenario.sessions,
    }
    output = _loop_output_path(scenario)
    output.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.sync_child", "--spec", json.dumps(spec), "--output", str(output)]
    # The URL goes in the environment, not the command line, because it may contain a password.
    environment = {**os.environ, "BENCH_DATABASE_URL": database_url}
    with (LOG_DIR / f"{scenario.name}-sync.log").open("wb") as log:
        child = subprocess.Popen(command, cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            child.wait()
            raise
    # wait4 reaped the child, so Popen must not wait for it again.
    child.returncode = os.waitstatus_to_exitcode(status)
    # Linux reports ru_maxrss in KiB. The figure is in MB of 10^6 bytes, the unit of the 300 MB target.
    return child.returncode, usage.ru_maxrss * 1024 / 1_000_000


def _loop_output_path(scenario: Scenario) -> Path:
    return LOG_DIR / f"{scenario.name}-loop.json"


def _read_loop_output(scenario: Scenario) -> dict[str, Any]:
    path = _loop_output_path(scenario)
    if not path.exists():
        return {}
    loop: dict[str, Any] = json.loads(path.read_text())
    return loop


def _relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_DIR))


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def print_table(results: list[ScenarioResult]) -> None:
    names = [result.scenario.name for result in results]
    width = max(14, *(len(name) + 2 for name in names))
    print()
    print(f"{'figure':<34}" + "".join(f"{name:>{width}}" for name in names))
    for row in TABLE_ROWS:
        print(f"{row:<34}" + "".join(f"{_format(result.figures.get(row)):>{width}}" for result in results))


def print_targets(results: list[ScenarioResult]) -> list[dict[str, Any]]:
    """Print each target that applies to a scenario that ran, met or missed; return them for the JSON file."""
    by_name = {result.scenario.name: result for result in results}
    outcomes = []
    print("\nTargets:")
    for target in TARGETS:
        result = by_name.get(target.scenario)
        if result is None:
            continue
        value = result.figures.get(target.figure)
        met = target.is_met(value)
        if met is None:
            label = "n/a"
        elif met:
            label = "met"
        else:
            label = "MISSED"
        note = ""
        if target.full_size_note and (result.scenario.sessions, result.scenario.transcript_chars) != (10_000, 50_000):
            note = f" (the target is {target.full_size_note}; this run is smaller)"
        print(
            f"  {label:<7}{target.scenario}.{target.figure} = {_format(value)} {target.comparison} {target.limit:g}{note}"
        )
        outcomes.append({**asdict(target), "value": value, "met": met})
    return outcomes


def print_check_failures(results: list[ScenarioResult]) -> None:
    failing = [(result.scenario.name, message) for result in results for message in result.check_failures]
    if not failing:
        print("\nCorrectness checks passed in every scenario.")
        return
    print()
    for scenario_name, message in failing:
        print(f"CHECK FAILED {scenario_name}: {message}")


def print_figure_lines(results: list[ScenarioResult]) -> None:
    print()
    for result in results:
        for name, value in result.figures.items():
            print(f"{result.scenario.name}.{name}: {_format(value)}")


def write_results(config: BenchConfig, results: list[ScenarioResult], targets: list[dict[str, Any]]) -> Path:
    now = datetime.now(UTC)
    document = {
        "date": now.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "git_commit": _git_commit(),
        "seed": config.seed,
        "limits": {"requests_per_ten_seconds": REQUESTS_PER_TEN_SECONDS, "searches_per_second": SEARCHES_PER_SECOND},
        "scenarios": {
            result.scenario.name: {
                "settings": asdict(result.scenario),
                "figures": result.figures,
                "check_failures": result.check_failures,
                "job_loop": result.loop,
            }
            for result in results
        },
        "targets": targets,
    }
    path = RESULTS_DIR / f"bench-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False))
    return path


def _git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return completed.stdout.strip()


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    database_url = resolve_database_url()
    if database_url is None:
        return 2

    results = []
    try:
        for scenario in config.scenarios:
            results.append(run_scenario(scenario, config, database_url))
    except (OSError, RuntimeError, psycopg.Error, httpx.HTTPError, ValueError) as error:
        print(f"The benchmark could not run: {error}", file=sys.stderr)
        return 2
    finally:
        if not config.keep_schema:
            drop_schema(database_url)

    print_table(results)
    targets = print_targets(results)
    print_check_failures(results)
    path = write_results(config, results, targets)
    print(f"\nFigures written to {_relative(path)}")
    print_figure_lines(results)
    return 1 if any(result.check_failures for result in results) else 0


if __name__ == "__main__":
    # The peak memory figure needs ru_maxrss in KiB, as Linux reports it (macOS reports bytes).
    if not sys.platform.startswith("linux"):
        print(f"Warning: peak_rss_mb assumes Linux's ru_maxrss unit, and this is {sys.platform}", file=sys.stderr)
    sys.exit(main())
