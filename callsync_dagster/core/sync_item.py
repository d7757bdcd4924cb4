"""The unit of work that the call workflow's ops pass along: one call session and what was learnt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callsync_dagster.core.counterparty import Counterparty
from callsync_dagster.core.models import CallSession
from callsync_dagster.core.phone import PhoneNumber
from callsync_dagster.core.work_item import WorkItem


@dataclass
class CallSyncItem(WorkItem):
    """One claimed session on its way through fetch, enrich, upsert, associate and write-back.

    Each op fills in its part; the outcome side (record, skip, fail, defer, succeed) is WorkItem's.
    """

    session: CallSession
    counterparty: Counterparty | None = None
    owner_id: str | None = None
    call_properties: dict[str, str] | None = None
    company_id: str | None = None
    engagement_id: str | None = None
    call_associations: list[dict[str, Any]] = field(default_factory=list)
    # True when this run created the CALL with its associations inline; a CALL found or prefilled is
    # checked for missing associations instead.
    call_created_now: bool = False

    @property
    def label(self) -> str:
        return f"call session {self.session.id}"

    @property
    def prefilled_contact_id(self) -> str | None:
        return self.session.hubspot_contact_id

    @property
    def phone_number(self) -> PhoneNumber | None:
        return self.counterparty.number if self.counterparty else None

    def learnt_ids(self) -> dict[str, str | None]:
        # The next attempt reuses the contact and finds the CALL by its id.
        return {
            "hubspot_contact_id": self.contact_id,
            "hubspot_company_id": self.company_id,
            "hubspot_engagement_id": self.engagement_id,
        }


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
