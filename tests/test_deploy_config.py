"""Check the files in deploy/ and docs/deployment.md, loading deploy/dagster.yaml as a real Dagster instance.

Each instance test copies deploy/dagster.yaml into a temporary DAGSTER_HOME and points DAGSTER_PG_URL at a
database that the test creates on the test server and drops afterwards.
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterInvalidConfigError,
    DagsterRun,
    DagsterRunStatus,
    DefaultRunLauncher,
    QueuedRunCoordinator,
    job,
    op,
)
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickStatus
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import URL

from callsync_dagster.resources.settings import CallSyncSettings

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEPLOY_DIR = PROJECT_DIR / "deploy"
INSTANCE_CONFIG = DEPLOY_DIR / "dagster.yaml"
HELM_VALUES = DEPLOY_DIR / "kubernetes" / "values.yaml"
SYSTEMD_DIR = DEPLOY_DIR / "systemd"
ENVIRONMENT_EXAMPLE = SYSTEMD_DIR / "callsync.env.example"
DEPLOYMENT_DOC = PROJECT_DIR / "docs" / "deployment.md"

# The console scripts of the environment running the tests: the project's .venv/bin under `make test`.
VENV_BIN = Path(sys.executable).parent
# Where the unit files and docs/deployment.md install the project.
INSTALL_DIR = "/opt/callsync"

# libpq parameters that have their own place in a SQLAlchemy URL. The others go into its query string.
URL_PARTS = {"host", "port", "user", "password", "dbname"}


def psycopg2_url(conninfo: str, **query: str) -> str:
    """Convert a libpq connection string into the `postgresql+psycopg2://` URL that DAGSTER_PG_URL takes.

    A Unix-socket host (the embedded test server listens on one) moves into the query string, where libpq
    reads it. Keyword arguments are added to the query string.
    """
    params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items() if value is not None}
    url_query = {key: value for key, value in params.items() if key not in URL_PARTS}
    host = params.get("host")
    if host is not None and host.startswith("/"):
        url_query["host"] = host
        host = None
    url_query.update(query)
    url = URL.create(
        "postgresql+psycopg2",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(params["port"]) if "port" in params else None,
        database=params.get("dbname"),
        query=url_query,
    )
    return url.render_as_string(hide_password=False)


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} does not contain a YAML mapping"
    return loaded


@contextmanager
def open_instance(
    dagster_home: Path, storage_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    """Open deploy/dagster.yaml as the instance in `dagster_home`, with DAGSTER_PG_URL set to `storage_url`."""
    dagster_home.mkdir()
    shutil.copy(INSTANCE_CONFIG, dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    if storage_url is None:
        monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    else:
        monkeypatch.setenv("DAGSTER_PG_URL", storage_url)
    with DagsterInstance.get() as instance:
        yield instance


@op
def do_nothing() -> None:
    pass


@job
def deploy_check_job() -> None:
    do_nothing()


# Fixtures


@pytest.fixture
def dagster_database(database_server_url: str) -> Iterator[str]:
    """A database created for one test on the test server and dropped after it; yields its libpq conninfo."""
    name = f"callsync_deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(database_server_url, dbname=name)
    with psycopg.connect(database_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def deploy_instance(
    tmp_path: Path, dagster_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    with open_instance(tmp_path / "dagster_home", psycopg2_url(dagster_database), monkeypatch) as instance:
        yield instance


@pytest.fixture(scope="module")
def instance_config() -> dict[str, Any]:
    return load_yaml(INSTANCE_CONFIG)


def tables_by_schema(conninfo: str) -> dict[str, set[str]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    tables: dict[str, set[str]] = {}
    for schema, table in rows:
        tables.setdefault(schema, set()).add(table)
    return tables


# The instance


def test_storage_is_postgres(deploy_instance: DagsterInstance, dagster_database: str) -> None:
    assert isinstance(deploy_instance.run_storage, PostgresRunStorage)
    assert isinstance(deploy_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(deploy_instance.schedule_storage, PostgresScheduleStorage)

    # The tables are in the database that DAGSTER_PG_URL names, not in SQLite under DAGSTER_HOME.
    public_tables = tables_by_schema(dagster_database).get("public", set())
    assert "runs" in public_tables
    assert "event_logs" in public_tables
    assert "job_ticks" in public_tables


def test_run_queue_limits_match_file(deploy_instance: DagsterInstance, instance_config: dict[str, Any]) -> None:
    assert isinstance(deploy_instance.run_coordinator, QueuedRunCoordinator)
    run_queue = deploy_instance.get_concurrency_config().run_queue_config
    assert run_queue is not None
    expected_runs = instance_config["concurrency"]["runs"]
    expected_coordinator = instance_config["run_coordinator"]["config"]

    assert run_queue.max_concurrent_runs == expected_runs["max_concurrent_runs"]
    assert run_queue.max_concurrent_runs > 0
    assert list(run_queue.tag_concurrency_limits) == expected_runs["tag_concurrency_limits"]
    assert run_queue.max_user_code_failure_retries == expected_coordinator["max_user_code_failure_retries"]
    assert run_queue.user_code_failure_retry_delay == expected_coordinator["user_code_failure_retry_delay"]


def test_run_queue_limit_keys(deploy_instance: DagsterInstance) -> None:
    run_queue = deploy_instance.get_concurrency_config().run_queue_config
    assert run_queue is not None
    limits = {limit["key"]: limit for limit in run_queue.tag_concurrency_limits}
    per_unique_value = {"applyLimitPerUniqueValue": True}

    assert limits["callsync/portal"] == {"key": "callsync/portal", "value": per_unique_value, "limit": 1}
    assert limits["dagster/sensor_name"]["value"] == per_unique_value
    assert limits["dagster/backfill"]["value"] == per_unique_value


def in_progress_run(**tags: str) -> DagsterRun:
    return DagsterRun(job_name="sync_calls_to_hubspot", status=DagsterRunStatus.STARTED, tags=tags)


def test_tag_limits_block_as_intended(deploy_instance: DagsterInstance) -> None:
    """Apply the instance's limits with the counter that Dagster's run queue daemon uses to hold runs back."""
    run_queue = deploy_instance.get_concurrency_config().run_queue_config
    assert run_queue is not None
    limits = list(run_queue.tag_concurrency_limits)
    running = [in_progress_run(**{"callsync/portal": "111", "dagster/sensor_name": "call_sessions_due_sensor"})]

    def blocked(**tags: str) -> bool:
        return TagConcurrencyLimitsCounter(limits, running).is_blocked(in_progress_run(**tags))

    assert blocked(**{"callsync/portal": "111"})
    assert not blocked(**{"callsync/portal": "222"})
    assert not blocked(**{"dagster/backfill": "abc"})
    # A run without the portal tag escapes the portal limit: the sensor and jobs must set it.
    assert not blocked()

    running.append(in_progress_run(**{"dagster/sensor_name": "call_sessions_due_sensor"}))
    assert blocked(**{"dagster/sensor_name": "call_sessions_due_sensor"})
    assert not blocked(**{"dagster/sensor_name": "another_sensor"})

    running.extend(in_progress_run(**{"dagster/backfill": "abc"}) for _ in range(2))
    assert blocked(**{"dagster/backfill": "abc"})
    assert not blocked(**{"dagster/backfill": "def"})


def test_run_monitoring_ends_before_lease(deploy_instance: DagsterInstance) -> None:
    assert deploy_instance.run_monitoring_enabled
    assert isinstance(deploy_instance.run_launcher, DefaultRunLauncher)
    assert deploy_instance.run_monitoring_max_resume_run_attempts == 0

    max_runtime = deploy_instance.run_monitoring_max_runtime_seconds
    assert max_runtime > 0
    # A run left STARTED by a dead code server is stopped and marked failed by the first monitoring poll
    # after max_runtime. That must happen within the claim lease, before another run may claim its sessions.
    worst_case_seconds = max_runtime + deploy_instance.run_monitoring_poll_interval_seconds
    assert worst_case_seconds < CallSyncSettings().claim_lease_minutes * 60


def test_retention_telemetry_and_retries(deploy_instance: DagsterInstance) -> None:
    sensor_retention = deploy_instance.get_tick_retention_settings(InstigatorType.SENSOR)
    schedule_retention = deploy_instance.get_tick_retention_settings(InstigatorType.SCHEDULE)

    assert sensor_retention == {
        TickStatus.SKIPPED: 3,
        TickStatus.SUCCESS: 30,
        TickStatus.FAILURE: 90,
        TickStatus.STARTED: 90,
    }
    assert set(schedule_retention.values()) == {90}
    assert not deploy_instance.telemetry_enabled
    assert not deploy_instance.run_retries_enabled


def test_run_record_round_trip(deploy_instance: DagsterInstance, dagster_database: str) -> None:
    result = deploy_check_job.execute_in_process(instance=deploy_instance, tags={"callsync/portal": "12345678"})
    assert result.success

    record = deploy_instance.get_run_record_by_id(result.run_id)
    assert record is not None
    assert record.dagster_run.status == DagsterRunStatus.SUCCESS
    assert record.dagster_run.tags["callsync/portal"] == "12345678"
    event_types = {event.dagster_event_type for event in deploy_instance.all_logs(result.run_id)}
    assert DagsterEventType.RUN_SUCCESS in event_types

    with psycopg.connect(dagster_database) as conn:
        row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,)).fetchone()
    assert row == ("SUCCESS",)


def test_search_path_keeps_tables_in_schema(
    tmp_path: Path, dagster_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented alternative to a database of Dagster's own: one schema, chosen in DAGSTER_PG_URL."""
    with psycopg.connect(dagster_database, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA dagster")
    storage_url = psycopg2_url(dagster_database, options="-csearch_path=dagster")
    assert "options=-csearch_path%3Ddagster" in storage_url

    with open_instance(tmp_path / "dagster_home", storage_url, monkeypatch) as instance:
        result = deploy_check_job.execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_record_by_id(result.run_id) is not None

    tables = tables_by_schema(dagster_database)
    assert "runs" in tables.get("dagster", set())
    assert "event_logs" in tables.get("dagster", set())
    assert tables.get("public", set()) == set()


def test_missing_pg_url_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DAGSTER_PG_URL the instance fails to load instead of falling back to SQLite."""
    with (
        pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_URL"),
        open_instance(tmp_path / "dagster_home", None, monkeypatch),
    ):
        pass


# The Helm values


def test_helm_values_match_instance_config(instance_config: dict[str, Any]) -> None:
    values = load_yaml(HELM_VALUES)
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = instance_config["concurrency"]["runs"]
    helm_retention = values["retention"]
    instance_retention = instance_config["retention"]

    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert values["additionalInstanceConfig"]["run_monitoring"] == instance_config["run_monitoring"]
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is False
    assert helm_retention["sensor"]["purgeAfterDays"] == instance_retention["sensor"]["purge_after_days"]
    assert helm_retention["schedule"]["purgeAfterDays"] == instance_retention["schedule"]["purge_after_days"]
    assert values["telemetry"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_helm_location_name_matches_workspace() -> None:
    values = load_yaml(HELM_VALUES)
    workspace = load_yaml(PROJECT_DIR / "workspace.yaml")
    location_names = {entry["python_module"]["location_name"] for entry in workspace["load_from"]}
    deployment_names = {deployment["name"] for deployment in values["dagster-user-deployments"]["deployments"]}

    assert deployment_names == location_names


# Service files and docs


@functools.cache
def command_help_returncode(command: tuple[str, ...]) -> int:
    """Run `command --help` from the test environment's bin folder and return its exit code."""
    completed = subprocess.run(
        [str(VENV_BIN / command[0]), *command[1:], "--help"], capture_output=True, timeout=120, check=False
    )
    return completed.returncode


def venv_command(words: list[str]) -> tuple[str, ...]:
    """Return the program name and its subcommands: the words up to the first option or argument."""
    command = [Path(words[0]).name]
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        command.append(word)
    return tuple(command)


def unit_exec_lines(unit: Path) -> list[list[str]]:
    lines = []
    for line in unit.read_text().splitlines():
        if re.match(r"Exec[A-Za-z]*=", line):
            lines.append(shlex.split(line.split("=", 1)[1]))
    return lines


def test_unit_files_run_venv_commands() -> None:
    units = sorted(SYSTEMD_DIR.glob("*.service"))
    assert [unit.name for unit in units] == ["callsync-dagster-daemon.service", "callsync-dagster-webserver.service"]

    for unit in units:
        exec_lines = unit_exec_lines(unit)
        assert exec_lines, f"{unit.name} has no Exec line"
        for words in exec_lines:
            assert words[0].startswith(f"{INSTALL_DIR}/.venv/bin/"), f"{unit.name} runs {words[0]}"
            command = venv_command(words)
            assert (VENV_BIN / command[0]).exists(), f"{unit.name} runs {command[0]}, which is not in {VENV_BIN}"
            assert command_help_returncode(command) == 0, f"{' '.join(command)} --help failed"
            assert "--workspace" in words, f"{unit.name} starts {command[0]} without --workspace"
            assert words[words.index("--workspace") + 1] == f"{INSTALL_DIR}/workspace.yaml"
        assert "EnvironmentFile=/etc/callsync/callsync.env" in unit.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_files_pass_systemd_verify(tmp_path: Path) -> None:
    """Verify the units with the install folder pointed at this checkout, whose .venv/bin has the programs."""
    for unit in SYSTEMD_DIR.glob("*.service"):
        text = unit.read_text().replace(f"{INSTALL_DIR}/.venv/bin", str(VENV_BIN))
        text = text.replace(INSTALL_DIR, str(PROJECT_DIR))
        (tmp_path / unit.name).write_text(text)

    completed = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(path) for path in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""


def test_docs_name_venv_commands() -> None:
    text = DEPLOYMENT_DOC.read_text()
    # A command ends at the end of its line or at the backtick that closes inline code.
    matches = re.finditer(r"[^\s`]*\.venv/bin/[^\s`]+(?: [^\s`]+)*", text)
    commands = {venv_command(match.group(0).split()) for match in matches}
    assert commands, "docs/deployment.md names no .venv/bin command"

    for command in sorted(commands):
        assert (VENV_BIN / command[0]).exists(), f"docs/deployment.md runs {command[0]}, which is not in {VENV_BIN}"
        assert command_help_returncode(command) == 0, f"{' '.join(command)} --help failed"


def environment_example_names() -> tuple[dict[str, str], set[str]]:
    """Return the variables that callsync.env.example sets, with their values, and those it shows commented out."""
    assigned: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENVIRONMENT_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            assigned[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"#([A-Z][A-Z0-9_]*)=.*", line):
            commented.add(match.group(1))
    return assigned, commented


def variables_read_by_code_location() -> set[str]:
    """Scan the package for environment variable names, leaving out the demo and the HubSpot stand-in."""
    pattern = re.compile(r"(?:environ\.get|environ\[|getenv|EnvVar|int_from_environment)\(?\s*\"([A-Z][A-Z0-9_]*)\"")
    names = set()
    for path in (PROJECT_DIR / "callsync_dagster").rglob("*.py"):
        if {"demo", "hubspot_standin"} & set(path.relative_to(PROJECT_DIR).parts):
            continue
        names.update(pattern.findall(path.read_text()))
    return names


def test_environment_example_lists_variables() -> None:
    assigned, commented = environment_example_names()
    code_variables = variables_read_by_code_location()
    assert "HUBSPOT_ACCESS_TOKEN" in code_variables, "the scan for environment variables found nothing"

    assert {"DAGSTER_HOME", "DAGSTER_PG_URL", "CALLSYNC_DATABASE_URL", "HUBSPOT_ACCESS_TOKEN"} <= assigned.keys()
    assert assigned["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    missing = code_variables - assigned.keys() - commented
    assert not missing, f"callsync.env.example does not mention {sorted(missing)}"
