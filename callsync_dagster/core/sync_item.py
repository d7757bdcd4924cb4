"""The unit of work that the call workflow's ops pass along: one call session and what was learnt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callsync_dagster.core.counterparty import Counterparty
from callsync_dagster.core.models import CallSession, SessionOutcome, SyncLogEntry, SyncStatus
from callsync_dagster.core.phone import PhoneNumber


@dataclass
class CallSyncItem:
    """One claimed session on its way through fetch, enrich, upsert, associate and write-back.

    Each op fills in its part. Once `outcome` is set (skipped or failed), later ops pass the item along
    untouched and write-back records it.
    """

    session: CallSession
    # The HubSpot account (portal) the session syncs to: its hubspot_portal_id, or the default portal.
    portal: str = ""
    counterparty: Counterparty | None = None
    owner_id: str | None = None
    call_properties: dict[str, str] | None = None
    contact_id: str | None = None
    # The source of contact_id: prefilled, map, run, search or created.
    contact_source: str | None = None
    company_id: str | None = None
    engagement_id: str | None = None
    call_associations: list[dict[str, Any]] = field(default_factory=list)
    # True when this run created the CALL with its associations inline; a CALL found or prefilled is
    # checked for missing associations instead.
    call_created_now: bool = False
    log: list[SyncLogEntry] = field(default_factory=list)
    outcome: SessionOutcome | None = None
    # Set when another run took the session after this run's lease expired; nothing more is done or
    # written for it here.
    claim_lost: bool = False

    @property
    def label(self) -> str:
        return f"call session {self.session.id}"

    @property
    def prefilled_contact_id(self) -> str | None:
        return self.session.hubspot_contact_id

    @property
    def phone_number(self) -> PhoneNumber | None:
        return self.counterparty.number if self.counterparty else None

    @property
    def is_done(self) -> bool:
        return self.outcome is not None or self.claim_lost

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
        # The HubSpot ids learnt so far are kept, so the next attempt reuses the contact and finds the CALL
        # by its id instead of relying on HubSpot's lagging search.
        self.outcome = SessionOutcome(
            status=SyncStatus.FAILED,
            reason=message,
            reason_code=reason_code,
            retryable=retryable,
            charge_attempt=charge_attempt,
            retry_at=retry_at,
            hubspot_contact_id=self.contact_id,
            hubspot_company_id=self.company_id,
            hubspot_engagement_id=self.engagement_id,
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
        """Put the session off until `retry_at` without charging an attempt: nothing is wrong with it, but
        HubSpot cannot take it yet (search lag, a paused account, another run's create in flight)."""
        self.fail(
            reason_code, message, retryable=True, correlation_id=correlation_id, charge_attempt=False, retry_at=retry_at
        )

    def succeed(self) -> None:
        self.outcome = SessionOutcome(
            status=SyncStatus.SYNCED,
            hubspot_contact_id=self.contact_id,
            hubspot_company_id=self.company_id,
            hubspot_engagement_id=self.engagement_id,
        )


@dataclass
class CallSyncBatch:
    """The sessions of one run, with the run's settings that every op needs."""

    run_id: str
    dry_run: bool
    items: list[CallSyncItem]
    # Set when HubSpot rejected the token or a scope: the run stops and write-back fails it after
    # recording every session.
    stop_reason: str | None = None
    # Set when the account takes no requests for a while (daily limit, 477): the run stops cleanly and
    # its open sessions wait until then.
    paused_reason: str | None = None

    def open_items(self) -> list[CallSyncItem]:
        return [item for item in self.items if not item.is_done]
