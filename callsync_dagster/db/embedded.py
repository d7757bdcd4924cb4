"""A PostgreSQL server for the demo and tests on machines without one: pgserver, under a project folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)


def database_answers(conninfo: str, timeout_seconds: int = 3) -> bool:
    """Return True when a PostgreSQL server accepts a connection with `conninfo`."""
    try:
        with psycopg.connect(conninfo, connect_timeout=timeout_seconds):
            return True
    except psycopg.OperationalError:
        return False


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives in `data_dir`; return its connection URL.

    pgserver listens on a Unix socket inside `data_dir` only, never on a network address, and stops the
    server when this process exits.
    """
    import pgserver  # A development dependency: imported here so production installs do not need it.

    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    url: str = server.get_uri()
    logger.info("Embedded PostgreSQL is running with its data in %s", data_dir)
    return url


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop the ids of exited processes from pgserver's list of processes using the server.

    pgserver stops the server only when the last process in that list exits. A process killed without
    cleanup (kill -9) stays in the list for ever, and the server would then outlive every later run.
    NOTE: this reads pgserver's private file `.handle_pids.json`, a JSON list of process ids in pgserver
    0.1.4. If pgserver changes that format, this does nothing rather than fail.
    """
    handles_file = data_dir / ".handle_pids.json"
    try:
        process_ids = json.loads(handles_file.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(process_ids, list):
        return
    alive = [process_id for process_id in process_ids if isinstance(process_id, int) and _process_exists(process_id)]
    if alive != process_ids:
        handles_file.write_text(json.dumps(alive))


def _process_exists(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
