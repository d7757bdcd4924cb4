"""The HubSpot stand-in in a process of its own, so that its CPU and memory are not counted as callsync's."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
# Reading every CALL of the full-size memory scenario returns hundreds of MB of JSON (estimated from 10,000 CALLs
# with bodies of about 50,000 characters).
ADMIN_READ_TIMEOUT_SECONDS = 600.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class StandinProcess:
    """`python -m callsync_dagster.hubspot_standin` on a free port of 127.0.0.1, with its log in `log_path`."""

    def __init__(self, log_path: Path, token: str, requests_per_ten_seconds: int, searches_per_second: int) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._command = [
            sys.executable,
            "-m",
            "callsync_dagster.hubspot_standin",
            "--port",
            str(self.port),
            "--rate-limit",
            str(requests_per_ten_seconds),
            "--search-per-second",
            str(searches_per_second),
            "--token",
            token,
            "--log-level",
            "warning",
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=ADMIN_READ_TIMEOUT_SECONDS)

    def start(self) -> StandinProcess:
        """Start the process and return once GET /_standin/health returns 200."""
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the HubSpot stand-in exited with code {self._process.returncode} during start-up. "
                    f"Read its log in {self.log_path}"
                )
            try:
                if self._http.get("/_standin/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"the HubSpot stand-in at {self.url} did not become healthy within {START_TIMEOUT_SECONDS} s"
        )

    def stop(self) -> None:
        """Interrupt the process as Ctrl-C would, and kill it if it has not exited after a few seconds."""
        self._http.close()
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> StandinProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- admin API --------------------------------------------------------------------------------------------

    def seed(self, payload: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post("/_standin/seed", json=payload)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def request_counts(self) -> dict[str, Any]:
        """Return the counts of /crm requests: total, by_route ("METHOD route template"), by_status, rate_limited."""
        response = self._http.get("/_standin/requests")
        response.raise_for_status()
        counts: dict[str, Any] = response.json()
        return counts

    def objects(self, object_type: str, properties: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Return every stored object of `object_type` with all its properties and associations.

        The admin endpoint returns all objects in one response today. It is read as a page, and any
        `paging.next.after` is followed, so a paged admin endpoint would still be read whole.
        """
        results: list[dict[str, Any]] = []
        params: dict[str, str] = {"properties": ",".join(properties)} if properties else {}
        while True:
            response = self._http.get(f"/_standin/objects/{object_type}", params=params)
            response.raise_for_status()
            body = response.json()
            results += body["results"]
            after = body.get("paging", {}).get("next", {}).get("after")
            if not after:
                return results
            params = {**params, "after": str(after)}
