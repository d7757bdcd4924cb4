"""When a failed session is tried again, and when callsync gives up on it."""

from __future__ import annotations

from datetime import datetime, timedelta

from callsync_dagster.core.models import SessionOutcome, SyncStatus


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


def retry_time(
    outcome: SessionOutcome,
    attempts: int,
    now: datetime,
    max_attempts: int,
    initial_delay_minutes: float,
    max_delay_minutes: float,
) -> datetime | None:
    """Return when a failed item is tried again: the time its outcome names, else the backoff's; None if never.

    An attempt that is not charged (an outage of the account, a deferral) waits its own time, or the first
    delay again when it names none. A charged attempt never comes back sooner than the backoff.
    """
    if outcome.status is not SyncStatus.FAILED or not outcome.retryable:
        return None
    backoff = next_attempt_at(
        now, attempts if outcome.charge_attempt else 1, max_attempts, initial_delay_minutes, max_delay_minutes
    )
    if outcome.retry_at is None:
        return backoff
    if not outcome.charge_attempt:
        return max(outcome.retry_at, now)
    return None if backoff is None else max(outcome.retry_at, backoff)
