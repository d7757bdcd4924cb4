"""`callsync demo` and `callsync ui`: the seeded demo data synced into the local HubSpot stand-in."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from callsync_dagster.db.embedded import start_embedded_postgres
from callsync_dagster.db.migrate import apply_migrations
from callsync_dagster.demo.conversations import build_demo_conversations, insert_demo_conversations
from callsync_dagster.demo.seed_data import DemoDataset, build_demo_dataset, insert_demo_dataset
from callsync_dagster.hubspot_standin import StandinServer, StandinState

# The demo owns this schema and drops it on every start, so it never touches application data even when
# DATABASE_URL points at a real database.
DEMO_SCHEMA = "callsync_demo"
# Sent only to the local stand-in; not a HubSpot credential.
DEMO_TOKEN = "demo-standin-token"
UI_STANDIN_PORT = 8765
UI_PORT = 3000
# The demo account has HubSpot Professional's burst limit; the stand-in enforces it and callsync's
# client-side limiter keeps under it.
DEMO_REQUESTS_PER_TEN_SECONDS = 190


def demo_standin_state() -> StandinState:
    return StandinState(tokens=[DEMO_TOKEN], rate_limit_per_interval=DEMO_REQUESTS_PER_TEN_SECONDS)


def project_dir() -> Path:
    """Return the folder the demo keeps its data in: the current directory (the checkout, under make)."""
    return Path.cwd()


def prepare_database() -> str:
    """Return the demo database URL (DATABASE_URL, else an embedded server under .pgdata/), migrated."""
    url = os.environ.get("DATABASE_URL")
    if url:
        print(f"Using the database from DATABASE_URL, schema {DEMO_SCHEMA}")
    else:
        # The server stops when this process exits, `make ui` included.
        url = start_embedded_postgres(project_dir() / ".pgdata")
        print("Started embedded PostgreSQL with its data in .pgdata/")

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(DEMO_SCHEMA)))
    applied = apply_migrations(url, DEMO_SCHEMA)
    print(f"Applied migrations: {', '.join(applied)}")
    return url


def seed(url: str, standin: StandinServer) -> DemoDataset:
    dataset = build_demo_dataset()
    with psycopg.connect(url) as conn:
        insert_demo_dataset(conn, DEMO_SCHEMA, dataset)
        insert_demo_conversations(conn, DEMO_SCHEMA, build_demo_conversations())
    httpx.post(f"{standin.url}/_standin/seed", json=dataset.standin_seed, timeout=30).raise_for_status()
    print(
        f"Seeded {len(dataset.sessions)} call sessions, {len(build_demo_conversations().conversations)} ElevenLabs "
        "conversations, and the stand-in's owners, companies and contacts"
    )
    return dataset


def configure_environment(database_url: str, standin_url: str) -> Path:
    """Point the code location's resources at the demo database and stand-in; return DAGSTER_HOME."""
    dagster_home = project_dir() / ".dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copy(project_dir() / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ.update(
        {
            "CALLSYNC_DATABASE_URL": database_url,
            "CALLSYNC_DB_SCHEMA": DEMO_SCHEMA,
            "HUBSPOT_ACCESS_TOKEN": DEMO_TOKEN,
            "HUBSPOT_BASE_URL": standin_url,
            "DAGSTER_HOME": str(dagster_home),
            "HUBSPOT_REQUESTS_PER_TEN_SECONDS": str(DEMO_REQUESTS_PER_TEN_SECONDS),
        }
    )
    return dagster_home


def run_demo() -> int:
    """Sync the demo data through Dagster, print the results and compare them with what was seeded."""
    started = time.monotonic()
    database_url = prepare_database()

    with StandinServer(demo_standin_state()) as standin:
        dataset = seed(database_url, standin)
        configure_environment(database_url, standin.url)

        # Imported only now: the code location reads its settings from the environment when loaded.
        from dagster import DagsterInstance

        from callsync_dagster.definitions import defs
        from callsync_dagster.jobs import SYNC_CALLS_JOB_NAME

        job = defs.resolve_job_def(SYNC_CALLS_JOB_NAME)
        instance = DagsterInstance.get()
        runs = 0
        while True:
            result = job.execute_in_process(
                instance=instance,
                run_config={
                    "ops": {"fetch": {"config": {"max_batch_size": 100}}},
                    "loggers": {"console": {"config": {"log_level": "INFO"}}},
                },
                tags={"callsync/trigger": "demo"},
                raise_on_error=False,
            )
            runs += 1
            if not result.success:
                print(f"Run {result.run_id} failed; open it with `make ui` to read its logs", file=sys.stderr)
                return 1
            if result.output_for_node("write_back")["sessions"] == 0:
                break

        requests = httpx.get(f"{standin.url}/_standin/requests", timeout=10).json()
        conversations_ok = sync_demo_conversations(defs, instance, database_url, standin)

    actual = count_outcomes(database_url)
    expected = expected_report_counts(dataset)
    print_report(actual, expected, requests, runs, time.monotonic() - started)
    return 0 if report_mismatches(actual, expected) == [] and conversations_ok else 1


def sync_demo_conversations(defs: Any, instance: Any, database_url: str, standin: StandinServer) -> bool:
    """Run the conversation workflow until nothing is due, then once more to show it creates nothing new."""
    from callsync_dagster.jobs import SYNC_CONVERSATIONS_JOB_NAME

    job = defs.resolve_job_def(SYNC_CONVERSATIONS_JOB_NAME)
    # The call demo seeds deals of its own; count only what the conversation runs add.
    before = {kind: len(standin_objects(standin, kind)) for kind in ("deals", "notes", "tasks")}
    for attempt in ("sync", "rerun"):
        result = job.execute_in_process(
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={"callsync/trigger": "demo"},
            raise_on_error=False,
        )
        if not result.success:
            print(f"Conversation run {result.run_id} failed; open it with `make ui`", file=sys.stderr)
            return False
        if attempt == "sync":
            created = {kind: len(standin_objects(standin, kind)) - before[kind] for kind in before}
    after_rerun = {kind: len(standin_objects(standin, kind)) - before[kind] for kind in before}

    query = sql.SQL("SELECT sync_status, count(*) FROM {} GROUP BY 1").format(
        sql.Identifier(DEMO_SCHEMA, "conversations")
    )
    history_query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(DEMO_SCHEMA, "sync_history"))
    with psycopg.connect(database_url) as conn:
        statuses: dict[str, int] = dict(conn.execute(query).fetchall())
        history_rows = conn.execute(history_query).fetchone()
    expected = build_demo_conversations().expected_counts()
    actual = {
        "synced": statuses.get("synced", 0),
        "skipped": statuses.get("skipped", 0),
        "pending": statuses.get("pending", 0),
        **created,
    }
    print()
    print(f"{'conversations':<34}{'count':>10}{'seeded as':>11}")
    for key in ("synced", "skipped", "pending", "deals", "notes", "tasks"):
        print(f"{key:<34}{actual[key]:>10}{expected[key]:>11}")
    print(f"sync_history rows:   {history_rows[0] if history_rows else 0}")
    print(f"Created by a rerun:  {sum(after_rerun.values()) - sum(created.values())} objects")
    mismatched = [key for key in expected if actual[key] != expected[key]]
    for key in mismatched:
        print(f"MISMATCH conversations {key}: {actual[key]} after the sync, {expected[key]} expected", file=sys.stderr)
    return not mismatched and after_rerun == created


def standin_objects(standin: StandinServer, object_type: str) -> list[Any]:
    response = httpx.get(
        f"{standin.url}/_standin/objects/{object_type}", params={"properties": "hs_object_id"}, timeout=30
    )
    response.raise_for_status()
    return list(response.json()["results"])


def count_outcomes(database_url: str) -> Counter[str]:
    """Count the demo sessions by sync status, and skipped or failed ones also by reason code."""
    query = sql.SQL("SELECT sync_status, sync_reason_code, count(*) FROM {} GROUP BY 1, 2").format(
        sql.Identifier(DEMO_SCHEMA, "telavox_call_sessions")
    )
    counts: Counter[str] = Counter()
    with psycopg.connect(database_url) as conn:
        for status, reason_code, number in conn.execute(query).fetchall():
            counts[status] += number
            if status in ("skipped", "failed"):
                counts[f"{status}: {reason_code}"] += number
    return counts


def expected_report_counts(dataset: DemoDataset) -> Counter[str]:
    """Translate the seeded expectations into the report's keys; sessions not yet due stay pending."""
    expected: Counter[str] = Counter()
    for status, reason_code in dataset.expected.values():
        key = "pending" if status == "not_eligible" else status
        expected[key] += 1
        if status in ("skipped", "failed"):
            expected[f"{status}: {reason_code}"] += 1
    return expected


def print_report(
    actual: Counter[str], expected: Counter[str], requests: dict[str, Any], runs: int, seconds: float
) -> None:
    print()
    print(f"{'outcome':<34}{'sessions':>10}{'seeded as':>11}")
    for key in sorted(set(actual) | set(expected)):
        print(f"{key:<34}{actual[key]:>10}{expected[key]:>11}")
    print("(pending: calls still in progress, or ended minutes ago and waiting for their transcript)")
    print()
    print(f"Dagster runs:        {runs}")
    print(f"HubSpot requests:    {requests.get('total', '?')} (the call runs)")
    print(f"Time taken:          {seconds:.1f} s")
    print("Open the runs, their logs and the session table with `make ui`.")


def report_mismatches(actual: Counter[str], expected: Counter[str]) -> list[str]:
    mismatched = sorted(key for key in set(actual) | set(expected) if actual[key] != expected[key])
    for key in mismatched:
        print(f"MISMATCH {key}: {actual[key]} after the sync, {expected[key]} expected from the seed", file=sys.stderr)
    return mismatched


def print_launch_examples(dataset: DemoDataset) -> None:
    """Print session ids that the sensor leaves alone, to launch one by one from the UI's Launchpad."""
    waiting = [
        session_id
        for session_id, category in dataset.categories.items()
        if category in ("transcription_pending_recent", "transcription_in_progress_recent")
    ]
    print("These calls ended minutes ago and wait for their transcript, so the sensor leaves them pending.")
    print("Launch one from the Launchpad (ops.fetch.config.session_ids) to sync it now, without a transcript:")
    for session_id in waiting:
        print(f"  {session_id}")


def run_ui() -> int:
    """Serve the Dagster UI on 127.0.0.1:3000 over freshly seeded demo data, with the sensor running."""
    database_url = prepare_database()
    with StandinServer(demo_standin_state(), port=UI_STANDIN_PORT) as standin:
        dataset = seed(database_url, standin)
        configure_environment(database_url, standin.url)
        print_launch_examples(dataset)
        print(f"HubSpot stand-in on {standin.url} (written CALLs: {standin.url}/_standin/objects/calls)")
        print(f"Dagster UI on http://127.0.0.1:{UI_PORT}; stop with Ctrl-C")
        command = [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            "workspace.yaml",
            "--host",
            "127.0.0.1",
            "--port",
            str(UI_PORT),
        ]
        return run_until_interrupted(command)


def run_until_interrupted(command: list[str]) -> int:
    """Run `command` until it exits, or until Ctrl-C or SIGTERM, which are passed on to it as SIGINT.

    A clean exit matters here: the stand-in and the embedded PostgreSQL stop only once this returns.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A process started in the background ignores SIGINT, so SIGTERM must stop it the same way.
    signal.signal(signal.SIGTERM, interrupt)
    # `dagster dev` expects Ctrl-C to reach its whole process group (webserver, daemon, code servers), so
    # it gets a group of its own and the interrupt is sent to all of it.
    child = subprocess.Popen(command, start_new_session=True)
    try:
        return child.wait()
    except KeyboardInterrupt:
        os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        return 0
