"""Run a step for each open session or each chunk of them, so that one failure does not fail the others."""

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar

from callsync_dagster.resources.hubspot_errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotPausedError,
    HubSpotRateLimitError,
    HubSpotTransientError,
)


class WorkItem(Protocol):
    """A call session's or a conversation's item, as far as the step runners need it."""

    portal: str

    @property
    def label(self) -> str: ...

    @property
    def is_done(self) -> bool: ...

    def fail(
        self,
        reason_code: str,
        message: str,
        *,
        retryable: bool,
        correlation_id: str | None = None,
        charge_attempt: bool = True,
        retry_at: datetime | None = None,
    ) -> None: ...

    def defer(self, reason_code: str, message: str, retry_at: datetime, correlation_id: str | None = None) -> None: ...


Item = TypeVar("Item", bound=WorkItem)


class WorkBatch(Protocol[Item]):
    stop_reason: str | None
    paused_reason: str | None

    def open_items(self) -> list[Item]: ...


def for_each_open_item(batch: WorkBatch[Item], step: str, work: Callable[[Item], None], log: logging.Logger) -> None:
    """Apply `work` to every session still open, turning its failures into that session's outcome."""
    for item in batch.open_items():
        if not _guard(batch, [item], step, partial(work, item), log):
            return


def for_each_open_chunk(
    batch: WorkBatch[Item],
    step: str,
    size: int,
    work: Callable[[list[Item]], None],
    log: logging.Logger,
) -> None:
    """Apply `work` to the open sessions `size` at a time, as HubSpot's batch requests take them.

    Chunks hold sessions of one portal. A failure of a whole request fails the sessions of that chunk
    only. Failures of single sessions inside a batch response are `work`'s to record.
    """
    by_portal: dict[str, list[Item]] = {}
    for item in batch.open_items():
        by_portal.setdefault(item.portal, []).append(item)
    # A chunk never mixes portals: each HubSpot request goes to one account.
    for items in by_portal.values():
        for chunk in chunks(items, size):
            if not _guard(batch, chunk, step, partial(work, chunk), log):
                return


def chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def open_items(items: list[Item]) -> list[Item]:
    return [item for item in items if not item.is_done]


def _guard(batch: WorkBatch[Item], items: list[Item], step: str, work: Callable[[], None], log: logging.Logger) -> bool:
    """Run `work`; return False when the whole run must stop (a rejected token, a paused account)."""
    try:
        work()
    except HubSpotAuthError as error:
        stop_batch(batch, error, log)
        return False
    except HubSpotPausedError as error:
        pause_batch(batch, error, log)
        return False
    except HubSpotRateLimitError as error:
        # The client retried with backoff already; the limit is the account's state, not the session's.
        for item in open_items(items):
            item.fail(
                "hubspot_rate_limit",
                str(error),
                retryable=True,
                correlation_id=error.correlation_id,
                charge_attempt=False,
            )
    except HubSpotError as error:
        # A 400 on a read or search is callsync's request, not the session's data: retried under the
        # attempt limit, in case HubSpot's limits or callsync changed.
        retryable = isinstance(error, HubSpotTransientError) or len(items) > 1
        for item in open_items(items):
            item.fail(f"hubspot_{step}", str(error), retryable=retryable, correlation_id=error.correlation_id)
    except Exception as error:
        # A bug or unexpected data must not take the rest of the batch down. The traceback goes to the
        # log, and the sessions are retried under the attempt limit.
        log.exception(
            "%s failed in %s with an unexpected error",
            ", ".join(item.label for item in items[:5]) + (" ..." if len(items) > 5 else ""),
            step,
        )
        for item in open_items(items):
            item.fail(f"error_{step}", f"unexpected {type(error).__name__} in {step}: {error}", retryable=True)
    return True


def stop_batch(batch: WorkBatch[Item], error: HubSpotAuthError, log: logging.Logger) -> None:
    batch.stop_reason = str(error)
    log.error("Stopping the run: %s", error)
    for item in batch.open_items():
        item.fail("hubspot_auth", str(error), retryable=True, correlation_id=error.correlation_id, charge_attempt=False)


def pause_batch(batch: WorkBatch[Item], error: HubSpotPausedError, log: logging.Logger) -> None:
    batch.paused_reason = str(error)
    log.warning("Stopping the run early, its sessions wait until %s: %s", error.resume_at.isoformat(), error)
    for item in batch.open_items():
        item.defer("hubspot_paused", str(error), error.resume_at, correlation_id=error.correlation_id)
