"""The unit of work of the conversation workflow: one conversation and what was learnt about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callsync_dagster.core.conversations import ContactIdentity, Conversation, Insights, SyncType
from callsync_dagster.core.models import SessionOutcome, SyncLogEntry, SyncStatus
from callsync_dagster.core.phone import PhoneNumber


@dataclass
class ConversationSyncItem:
    """One claimed conversation on its way through fetch, enrich, upsert and write-back.

    It has the same shape as a call session's item where the shared steps need it (the contact lookup, the
    outcome), so those steps serve both workflows.
    """

    conversation: Conversation
    insights: Insights | None = None
    identity: ContactIdentity | None = None
    portal: str = ""
    owner_id: str | None = None
    contact_id: str | None = None
    # The source of contact_id: prefilled, map, run, search or created.
    contact_source: str | None = None
    contact_label: str | None = None
    deal_id: str | None = None
    note_id: str | None = None
    task_id: str | None = None
    log: list[SyncLogEntry] = field(default_factory=list)
    # The deals, notes and tasks created or found in this run; their sync_history rows are already written.
    created: list[SyncLogEntry] = field(default_factory=list)
    # The kinds whose object existed before this run (stored id or found by marker): their associations are
    # checked instead of assumed.
    adopted: set[SyncType] = field(default_factory=set)
    outcome: SessionOutcome | None = None
    claim_lost: bool = False

    @property
    def label(self) -> str:
        return f"conversation {self.conversation.conversation_id}"

    @property
    def prefilled_contact_id(self) -> str | None:
        return self.conversation.hubspot_contact_id

    @property
    def phone_number(self) -> PhoneNumber | None:
        return self.identity.phone if self.identity else None

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
        self.outcome = SessionOutcome(
            status=SyncStatus.FAILED,
            reason=message,
            reason_code=reason_code,
            retryable=retryable,
            charge_attempt=charge_attempt,
            retry_at=retry_at,
            hubspot_contact_id=self.contact_id,
        )
        self.record(
            "failed",
            error=message,
            hubspot_correlation_id=correlation_id,
            detail={"reason_code": reason_code, "retryable": retryable},
        )

    def defer(self, reason_code: str, message: str, retry_at: datetime, correlation_id: str | None = None) -> None:
        """Put the conversation off until `retry_at` without charging an attempt."""
        self.fail(
            reason_code, message, retryable=True, correlation_id=correlation_id, charge_attempt=False, retry_at=retry_at
        )

    def succeed(self) -> None:
        self.outcome = SessionOutcome(status=SyncStatus.SYNCED, hubspot_contact_id=self.contact_id)

    def object_id(self, kind: SyncType) -> str | None:
        return {SyncType.DEAL: self.deal_id, SyncType.NOTE: self.note_id, SyncType.TASK: self.task_id}.get(kind)

    def set_object_id(self, kind: SyncType, object_id: str) -> None:
        setattr(self, f"{kind.value}_id", object_id)


@dataclass
class ConversationSyncBatch:
    """The conversations of one run, with the run's settings that every op needs."""

    run_id: str
    dry_run: bool
    items: list[ConversationSyncItem]
    stop_reason: str | None = None
    paused_reason: str | None = None

    def open_items(self) -> list[ConversationSyncItem]:
        return [item for item in self.items if not item.is_done]
