"""A client-side sliding-window limiter, so callsync stays under HubSpot's limits instead of hitting 429s."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Allow at most `max_requests` in any `interval_seconds` window within this process.

    NOTE: the window lives in this process's memory, so concurrent runs against one HubSpot account
    each get the full allowance. HubSpot's 429 responses, which the client retries, are the backstop.
    """

    def __init__(
        self,
        max_requests: int,
        interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or interval_seconds <= 0:
            raise ValueError(f"invalid rate limit {max_requests} per {interval_seconds} s: both must be positive")
        self.max_requests = max_requests
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until one more request fits in the window; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.interval_seconds:
                    self._sent.popleft()
                if len(self._sent) < self.max_requests:
                    self._sent.append(now)
                    return waited
                wait = self.interval_seconds - (now - self._sent[0])
            self._sleep(wait)
            waited += wait
