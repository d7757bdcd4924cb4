"""When a failed session is tried again, and when callsync gives up on it."""

from __future__ import annotations

from datetime import datetime, timedelta


def next_attempt_at(
    now: datetime, attempts: int, max_attempts: int, initial_delay_minutes: float, max_delay_minutes: float
) -> datetime | None:
    """Return when to try again after `attempts` tries, or None once `max_attempts` is reached.

    The delay doubles with each attempt (initial, 2x, 4x, ...) up to `max_delay_minutes`.
    """
    if attempts >= max_attempts:
        return None
    delay_minutes = min(initial_delay_minutes * 2 ** max(attempts - 1, 0), max_delay_minutes)
    return now + timedelta(minutes=delay_minutes)
