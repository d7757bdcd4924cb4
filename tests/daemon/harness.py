"""A `dagster-daemon run` process over a throwaway Postgres-backed DAGSTER_HOME, for the daemon tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import psutil
import yaml
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

PROJECT_DIR = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.5
T = TypeVar("T")

# libpq parameters that a SQLAlchemy URL has fields for. The others go into its query string.
_URL_PARTS = {"host", "port", "user", "password", "dbname"}


def psycopg2_url(conninfo: str) -> str:
    """Convert a libpq connection string or URL into the `postgresql+psycopg2://` URL that dagster-postgres takes.

    dagster-postgres uses psycopg2, and SQLAlchemy 2.1 picks psycopg 3 for a bare `postgresql://` URL. A
    Unix-socket host (a folder, as the embedded server uses) goes into the query string, where libpq reads it.
    """
    params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items() if value is not None}
    query = {key: value for key, value in params.items() if key not in _URL_PARTS}
    host = params.get("host")
    if host is not None and host.startswith("/"):
        query["host"] = host
        host = None
    url = URL.create(
        "postgresql+psycopg2",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(params["port"]) if "port" in params else None,
        database=params.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


def write_instance_config(dagster_home: Path, storage_url: str, max_runtime_seconds: int) -> Path:
    """Write a dagster.yaml with Postgres storage, a fast run queue and run monitoring, and return its path.

    The keys follow the instance schema of Dagster 1.13 in `dagster._core.instance.config`. `run_queue` configures
    the default QueuedRunCoordinator, whose daemon otherwise dequeues every 5 s.
    """
    config = {
        "storage": {"postgres": {"postgres_url": storage_url}},
        "run_queue": {"dequeue_interval_seconds": 1},
        "run_monitoring": {
            "enabled": True,
            "poll_interval_seconds": 2,
            "max_runtime_seconds": max_runtime_seconds,
        },
        "telemetry": {"enabled": False},
    }
    path = dagster_home / "dagster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class DaemonProcess:
    """`dagster-daemon run -w workspace.yaml`, started in the project folder, with its output in a log file.

    The daemon starts a code server for the workspace, and the code server starts one run worker process per
    run. `stop` ends the daemon and then every one of those processes that it has seen and that is still alive.
    """

    def __init__(self, environment: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self._descendants: dict[int, psutil.Process] = {}
        command = [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"]
        self.process = subprocess.Popen(
            command, cwd=PROJECT_DIR, env=dict(environment), stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def remember_descendants(self) -> None:
        """Record the daemon's child processes now, so that `stop` can end those that outlive the daemon."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            self._descendants.setdefault(child.pid, child)

    def log_tail(self, line_count: int = 60) -> str:
        self._log_file.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-line_count:])

    def wait_until(self, condition: Callable[[], T | None], timeout_seconds: float, expected: str) -> T:
        """Poll `condition` until it returns a true value and return that value.

        Raises AssertionError naming `expected`, with the end of the daemon's log, when the daemon exits or
        `timeout_seconds` pass first.
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            self.remember_descendants()
            exit_code = self.process.poll()
            if exit_code is not None:
                raise AssertionError(
                    f"dagster-daemon exited with code {exit_code} while waiting for {expected}.\n{self.log_tail()}"
                )
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Timed out after {timeout_seconds:g} s waiting for {expected}. End of the daemon log:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(POLL_SECONDS)

    def stop(self, timeout_seconds: float = 20.0) -> None:
        """Stop the daemon with SIGTERM, or SIGKILL after `timeout_seconds`, then end the processes it left.

        Dagster handles SIGTERM like Ctrl-C, so the daemon shuts its code server down itself. A run worker can
        outlive the daemon, and so can every child after a SIGKILL. Those processes get SIGTERM, then SIGKILL
        after 5 s.
        """
        self.remember_descendants()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

        # psutil checks each process's start time as well as its id, so a reused id is never signalled.
        leftovers = [child for child in self._descendants.values() if child.is_running()]
        for child in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=5)
        self._log_file.close()
