"""A PostgreSQL server for the demo and tests on machines without one: pgserver, under a project folder."""

from __future__ import annotations

import logging
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
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    url: str = server.get_uri()
    logger.info("Embedded PostgreSQL is running with its data in %s", data_dir)
    return url
