"""Run the HubSpot stand-in under uvicorn on 127.0.0.1, in a background thread or in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from callsync_dagster.hubspot_standin.app import create_app
from callsync_dagster.hubspot_standin.state import (
    DEFAULT_DAILY_LIMIT,
    DEFAULT_PHONE_REGION,
    DEFAULT_RATE_LIMIT_PER_INTERVAL,
    DEFAULT_SEARCH_PER_SECOND,
    StandinError,
    StandinState,
)

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
HEALTH_PATH = "/_standin/health"
DEFAULT_START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
# How long uvicorn lets running requests finish when it stops, so that a request held by a fault's delay_seconds
# (up to 600 s) is cancelled instead of keeping stop() waiting. It is below STOP_TIMEOUT_SECONDS.
GRACEFUL_SHUTDOWN_SECONDS = 3
DEFAULT_PORT = 8765


class StandinServer:
    """The stand-in served by uvicorn in a daemon thread on 127.0.0.1.

    Use it as a context manager, or call start() and stop(). port=0 picks a free port, and `url` gives the base URL
    once started. Pass either a state or StandinState's keyword arguments (tokens, rate_limit_per_interval,
    search_per_second, daily_limit, default_phone_region, clock, search_lag_seconds, token_scopes), as
    StandinServer(tokens=["test-token"]).
    """

    def __init__(
        self,
        state: StandinState | None = None,
        *,
        port: int = 0,
        start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS,
        **state_options: Any,
    ) -> None:
        if state is None:
            state = StandinState(**state_options)
        elif state_options:
            raise TypeError("StandinServer takes either a state or StandinState options, not both.")
        self.state = state
        self._requested_port = port
        self._start_timeout = start_timeout
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("StandinServer has no port before start().")
        return self._port

    @property
    def url(self) -> str:
        """Base URL such as http://127.0.0.1:54321, to use as the HubSpot API base URL."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> StandinServer:
        """Bind the port, start uvicorn and return once GET /_standin/health returns 200.

        Raises RuntimeError if the server thread stops or the health check does not pass in start_timeout s.
        """
        if self._thread is not None:
            raise RuntimeError("StandinServer is already started.")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self._requested_port))
        self._socket = listener
        self._port = listener.getsockname()[1]

        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [listener]},
            name=f"hubspot-standin-{self._port}",
            daemon=True,
        )
        self._thread.start()
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        logger.info("HubSpot stand-in started at %s", self.url)
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        last_error = "no response yet"
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError(f"HubSpot stand-in on port {self._port} stopped during start-up.")
                try:
                    response = client.get(self.url + HEALTH_PATH)
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
                except httpx.TransportError as error:
                    last_error = repr(error)
                time.sleep(0.02)
        raise RuntimeError(
            f"HubSpot stand-in at {self.url} did not respond to {HEALTH_PATH} within {self._start_timeout} s "
            f"(last result: {last_error})."
        )

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread and close the socket. Safe to call more than once."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                logger.warning(
                    "HubSpot stand-in thread on port %s did not stop within %s s", self._port, STOP_TIMEOUT_SECONDS
                )
        if self._socket is not None:
            self._socket.close()
        was_running = self._thread is not None
        self._server = None
        self._thread = None
        self._socket = None
        if was_running:
            logger.info("HubSpot stand-in on port %s stopped", self._port)

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m callsync_dagster.hubspot_standin",
        description="Serve the local HubSpot stand-in on 127.0.0.1 until interrupted.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port on 127.0.0.1, or 0 for a free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--token",
        action="append",
        required=True,
        help="bearer token that /crm requests must send. Repeat the option for several tokens. It is visible in the process list, "
        "so use a test value",
    )
    parser.add_argument(
        "--seed-file", type=Path, help="JSON file in the POST /_standin/seed format, loaded before serving"
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=DEFAULT_RATE_LIMIT_PER_INTERVAL,
        help="requests per token in any rolling 10 s window, search excluded "
        f"(default {DEFAULT_RATE_LIMIT_PER_INTERVAL})",
    )
    parser.add_argument(
        "--search-per-second",
        type=int,
        default=DEFAULT_SEARCH_PER_SECOND,
        help=f"search requests per token per second (default {DEFAULT_SEARCH_PER_SECOND})",
    )
    parser.add_argument(
        "--daily-limit",
        type=int,
        default=DEFAULT_DAILY_LIMIT,
        help=f"requests per token until restart or reset (default {DEFAULT_DAILY_LIMIT})",
    )
    parser.add_argument(
        "--phone-region",
        default=DEFAULT_PHONE_REGION,
        help=f"region for phone numbers without country code (default {DEFAULT_PHONE_REGION})",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level of the stand-in and uvicorn (default info)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the stand-in in the foreground and return 0 after SIGINT.

    SIGTERM also shuts uvicorn down cleanly, but uvicorn then raises it again, so the process ends by that signal.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        state = StandinState(
            args.token,
            rate_limit_per_interval=args.rate_limit,
            search_per_second=args.search_per_second,
            daily_limit=args.daily_limit,
            default_phone_region=args.phone_region,
        )
    except ValueError as error:
        parser.error(str(error))

    if args.seed_file is not None:
        try:
            seed = json.loads(args.seed_file.read_text(encoding="utf-8"))
            created = state.seed(seed)
        except (OSError, json.JSONDecodeError) as error:
            parser.error(f"cannot read seed file {args.seed_file}: {error}")
        except StandinError as error:
            parser.error(f"invalid seed file {args.seed_file}: {error.message}")
        logger.info("seeded from %s: %s", args.seed_file, json.dumps(created))

    config = uvicorn.Config(
        create_app(state),
        host=HOST,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    logger.info("serving the HubSpot stand-in on http://%s:%d with %d tokens", HOST, args.port, len(state.tokens))
    # uvicorn shuts down cleanly on SIGINT and then raises it again, which arrives here as KeyboardInterrupt.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
    logger.info("HubSpot stand-in stopped")
    return 0
