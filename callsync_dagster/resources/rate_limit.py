"""Client-side rate limits, so callsync stays under HubSpot's limits instead of collecting 429s.

HubSpot counts requests per app in a rolling 10-second window and searches per account per second. Every
run of callsync against one account must therefore draw from the same allowance: `SharedRateLimiter`
keeps the windows in PostgreSQL, where all run processes see them. `LocalRateLimiter` keeps them in memory
for code that runs alone (scripts, the stand-in's own tests).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol

import psycopg
from psycopg import sql

from callsync_dagster.db.schema_name import validate_schema_name

RequestKind = Literal["general", "search"]

GENERAL_WINDOW_SECONDS = 10.0
SEARCH_WINDOW_SECONDS = 1.0
# A request sent at the edge of a window can reach HubSpot a little later than the next one. Planning each
# window 2% longer than HubSpot's keeps that jitter from turning into a 429, at a 2% cost in throughput.
WINDOW_MARGIN = 1.02


class LimiterPaused(Exception):
    """The next request of this kind could go only after more than the caller is willing to wait."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"paused for {seconds:.0f} s: {reason}")
        self.seconds = seconds
        self.reason = reason


class RateLimiter(Protocol):
    """The interface the HubSpot client needs from a limiter."""

    def acquire(self, kind: RequestKind, max_wait_seconds: float = float("inf")) -> float:
        """Block until one more request of `kind` fits and return the seconds waited, or raise
        LimiterPaused when that would take longer than `max_wait_seconds`."""
        ...

    def pause(self, seconds: float, reason: str) -> None:
        """Hold back every request, in every process sharing the limiter, for `seconds`."""
        ...

    def lower_general_limit(self, max_requests: int) -> None:
        """Use a smaller general limit than configured, as HubSpot's X-HubSpot-RateLimit-Max header reports."""
        ...


class SlidingWindow:
    """At most `max_requests` in any `interval_seconds`, within this process."""

    def __init__(
        self,
        max_requests: int,
        interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_requests < 1 or interval_seconds <= 0:
            raise ValueError(f"invalid rate limit {max_requests} per {interval_seconds} s: both must be positive")
        self.max_requests = max_requests
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._sent: deque[float] = deque()
        self.paused_until = 0.0

    def reserve(self, max_wait_seconds: float = float("inf")) -> float:
        """Reserve the earliest send time that keeps the window within its limit; return the wait until it.

        When that wait is over `max_wait_seconds`, nothing is reserved and the wait is returned all the same.
        """
        now = self._clock()
        while self._sent and now - self._sent[0] >= self.interval_seconds:
            self._sent.popleft()
        slot = max(now, self.paused_until)
        if len(self._sent) >= self.max_requests:
            slot = max(slot, self._sent[-self.max_requests] + self.interval_seconds)
        if slot - now > max_wait_seconds:
            return slot - now
        self._sent.append(slot)
        while len(self._sent) > self.max_requests:
            self._sent.popleft()
        return slot - now


class LocalRateLimiter:
    """The general and search limits, kept in this process's memory."""

    def __init__(
        self,
        requests_per_ten_seconds: int,
        searches_per_second: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._windows = {
            "general": SlidingWindow(requests_per_ten_seconds, GENERAL_WINDOW_SECONDS * WINDOW_MARGIN, clock),
            "search": SlidingWindow(searches_per_second, SEARCH_WINDOW_SECONDS * WINDOW_MARGIN, clock),
        }
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pause_reason = "a pause"

    def acquire(self, kind: RequestKind, max_wait_seconds: float = float("inf")) -> float:
        with self._lock:
            window = self._windows[kind]
            wait = window.reserve(max_wait_seconds)
            if wait > max_wait_seconds:
                paused = window.paused_until - self._clock() > max_wait_seconds
                raise LimiterPaused(wait, self._pause_reason if paused else "the rate-limit window is full")
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def pause(self, seconds: float, reason: str) -> None:
        with self._lock:
            until = self._clock() + seconds
            # A shorter pause inside a longer one (a 429 during a daily-limit pause) keeps the longer one's reason.
            if until >= max(window.paused_until for window in self._windows.values()):
                self._pause_reason = reason
            for window in self._windows.values():
                window.paused_until = max(window.paused_until, until)

    def lower_general_limit(self, max_requests: int) -> None:
        with self._lock:
            general = self._windows["general"]
            general.max_requests = max(1, min(general.max_requests, max_requests))


class SharedRateLimiter:
    """The general and search limits, kept in PostgreSQL so that concurrent runs share them.

    Each request costs one round trip to `callsync_reserve_rate_slot` (migration 0004), which reserves a
    send time under a row lock and returns the wait. The database's clock is the only clock, so processes
    on different machines agree. The general bucket is keyed by a hash of the token, because HubSpot's burst
    limit is per app. The search bucket is keyed by the portal, because the search limit is per account.
    The token itself is never stored.
    """

    def __init__(
        self,
        database_url: str,
        db_schema: str,
        portal: str,
        access_token: str,
        requests_per_ten_seconds: int,
        searches_per_second: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._database_url = database_url
        self._schema = validate_schema_name(db_schema)
        token_hash = hashlib.sha256(access_token.encode()).hexdigest()[:16]
        self.buckets: dict[RequestKind, str] = {
            "general": f"{portal}:general:{token_hash}",
            "search": f"{portal}:search",
        }
        self._limits: dict[RequestKind, tuple[int, int]] = {
            "general": (requests_per_ten_seconds, int(GENERAL_WINDOW_SECONDS * WINDOW_MARGIN * 1000)),
            "search": (searches_per_second, int(SEARCH_WINDOW_SECONDS * WINDOW_MARGIN * 1000)),
        }
        self._sleep = sleep
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def acquire(self, kind: RequestKind, max_wait_seconds: float = float("inf")) -> float:
        max_requests, window_ms = self._limits[kind]
        max_wait_ms = min(int(max_wait_seconds * 1000), 2**62) if max_wait_seconds != float("inf") else 2**62
        query = sql.SQL("SELECT * FROM {}.callsync_reserve_rate_slot(%s, %s, %s, %s)").format(
            sql.Identifier(self._schema)
        )
        row = self._execute(query, (self.buckets[kind], max_requests, window_ms, max_wait_ms))
        assert row is not None, "callsync_reserve_rate_slot returns one row"
        wait, reserved, reason = float(row[0]), bool(row[1]), row[2]
        if not reserved:
            raise LimiterPaused(wait, str(reason or "the rate-limit window is full"))
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def pause(self, seconds: float, reason: str) -> None:
        query = sql.SQL(
            "INSERT INTO {table} (bucket, paused_until, pause_reason)"
            " SELECT bucket, clock_timestamp() + make_interval(secs => %(seconds)s), %(reason)s"
            " FROM unnest(%(buckets)s::text[]) AS bucket"
            " ON CONFLICT (bucket) DO UPDATE SET"
            " paused_until = greatest(coalesce({table}.paused_until, excluded.paused_until), excluded.paused_until),"
            " pause_reason = CASE WHEN excluded.paused_until >= coalesce({table}.paused_until, '-infinity')"
            " THEN excluded.pause_reason ELSE {table}.pause_reason END, updated_at = now()"
        ).format(table=sql.Identifier(self._schema, "callsync_rate_limit_windows"))
        self._execute(query, {"seconds": seconds, "reason": reason, "buckets": list(self.buckets.values())})

    def lower_general_limit(self, max_requests: int) -> None:
        with self._lock:
            configured, window_ms = self._limits["general"]
            self._limits["general"] = (max(1, min(configured, max_requests)), window_ms)

    def _execute(self, query: sql.Composed, params: Any) -> tuple[Any, ...] | None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self._database_url, autocommit=True, connect_timeout=10)
                    cursor = self._conn.execute(query, params)
                    return cursor.fetchone() if cursor.description else None
                except psycopg.OperationalError:
                    # A dropped connection (a database restart, an idle timeout) is reopened once.
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
        return None
