"""The part every workflow's unit of work shares: its contact, its sync log and its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callsync_dagster.core.models import SessionOutcome, SyncLogEntry, SyncStatus


@dataclass(kw_only=True)
class WorkItem:
    """The outcome side of an item: a call session's or a conversation's.

    Once `outcome` is set (skipped, failed or synced), later ops pass the item along untouched and
    write-back records it. A subclass names the HubSpot ids a failure keeps in `learnt_ids`.
    """

    # The HubSpot account (portal) the item syncs to.
    portal: str = ""
    contact_id: str | None = None
    # The source of contact_id: prefilled, map, run, search or created.
    contact_source: str | None = None
    log: list[SyncLogEntry] = field(default_factory=list)
    outcome: SessionOutcome | None = None
    # Set when another run took the item after this run's lease expired; nothing more is done for it here.
    claim_lost: bool = False

    @property
    def is_done(self) -> bool:
        return self.outcome is not None or self.claim_lost

    def learnt_ids(self) -> dict[str, str | None]:
        """Return the HubSpot ids an outcome keeps, as SessionOutcome fields."""
        return {"hubspot_contact_id": self.contact_id}

    def record(self, action: str, **details: Any) -> None:
        self.log.append(SyncLogEntry(action=action, **details))

    def skip(self, reason_code: str, reason: str) -> None:
        self.outcome = SessionOutcome(status=SyncStatus.SKIPPED, reason=reason, reason_code=reason_code)
        self.record("skipped", error=reason, detail={"reason_code": reason_code})

    def fail(
        self,
        reason_code: str,
        message: str,
        *,
        retryable: bool,
        correlation_id: str | None = None,
        charge_attempt: bool = True,
        retry_at: datetime | None = None,
    ) -> None:
        # The HubSpot ids learnt so far are kept, so the next attempt reuses them instead of relying on
        # HubSpot's lagging search.
        self.outcome = SessionOutcome(
            status=SyncStatus.FAILED,
            reason=message,
            reason_code=reason_code,
            retryable=retryable,
            charge_attempt=charge_attempt,
            retry_at=retry_at,
            **self.learnt_ids(),
        )
        self.record(
            "failed",
            error=message,
            hubspot_correlation_id=correlation_id,
            detail={
                "reason_code": reason_code,
                "retryable": retryable,
                **({"retry_at": retry_at.isoformat()} if retry_at else {}),
            },
        )

    def defer(self, reason_code: str, message: str, retry_at: datetime, correlation_id: str | None = None) -> None:
        """Put the item off until `retry_at` without charging an attempt: nothing is wrong with it, but
        HubSpot cannot take it yet (search lag, a paused account, another run's create in flight)."""
        self.fail(
            reason_code, message, retryable=True, correlation_id=correlation_id, charge_attempt=False, retry_at=retry_at
        )

    def succeed(self) -> None:
        self.outcome = SessionOutcome.model_validate({"status": SyncStatus.SYNCED, **self.learnt_ids()})
