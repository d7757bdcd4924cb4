"""Run one step for each open session, so that an error in one session does not fail the others."""

import logging
from collections.abc import Callable

from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.resources.hubspot_errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotRateLimitError,
    HubSpotTransientError,
)


def for_each_open_item(
    batch: CallSyncBatch, step: str, work: Callable[[CallSyncItem], None], log: logging.Logger
) -> None:
    """Apply `work` to every session still open, turning its failures into that session's outcome.

    HubSpot auth failures are the exception: no session can succeed with a bad token, so every open
    session is failed as retryable and the batch is marked to stop.
    """
    for item in batch.open_items():
        try:
            work(item)
        except HubSpotAuthError as error:
            stop_batch(batch, error, log)
            return
        except HubSpotRateLimitError as error:
            # A used-up daily limit is the account's state, not the session's, so no attempt is charged.
            item.fail(
                "hubspot_rate_limit",
                str(error),
                retryable=True,
                correlation_id=error.correlation_id,
                charge_attempt=error.policy_name != "DAILY",
            )
        except HubSpotError as error:
            retryable = isinstance(error, HubSpotTransientError)
            item.fail(f"hubspot_{step}", str(error), retryable=retryable, correlation_id=error.correlation_id)
        except Exception as error:
            # A bug or unexpected data must not take the rest of the batch down. The traceback goes to the
            # log, and the session is retried under the attempt limit.
            item.fail(f"error_{step}", f"unexpected {type(error).__name__} in {step}: {error}", retryable=True)
            log.exception("Call session %s failed in %s with an unexpected error", item.session.id, step)


def stop_batch(batch: CallSyncBatch, error: HubSpotAuthError, log: logging.Logger) -> None:
    batch.stop_reason = str(error)
    log.error("Stopping the run: %s", error)
    for item in batch.open_items():
        item.fail("hubspot_auth", str(error), retryable=True, correlation_id=error.correlation_id, charge_attempt=False)
