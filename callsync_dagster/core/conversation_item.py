"""The unit of work of the conversation workflow: one conversation and what was learnt about it."""

from __future__ import annotations

from dataclasses import dataclass, field

from callsync_dagster.core.conversations import ContactIdentity, Conversation, Insights, SyncType
from callsync_dagster.core.models import SyncLogEntry
from callsync_dagster.core.phone import PhoneNumber
from callsync_dagster.core.work_item import WorkItem


@dataclass
class ConversationSyncItem(WorkItem):
    """One claimed conversation on its way through fetch, enrich, upsert, associate and write-back.

    The outcome side is WorkItem's, as a call session's item, so the shared steps (the contact lookup, the
    step runners) serve both workflows.
    """

    conversation: Conversation
    insights: Insights | None = None
    identity: ContactIdentity | None = None
    owner_id: str | None = None
    contact_label: str | None = None
    deal_id: str | None = None
    note_id: str | None = None
    task_id: str | None = None
    # The deals, notes and tasks created or found in this run; their sync_history rows are already written.
    created: list[SyncLogEntry] = field(default_factory=list)
    # The kinds whose object existed before this run (stored id or found by marker): their associations are
    # checked instead of assumed.
    adopted: set[SyncType] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"conversation {self.conversation.conversation_id}"

    @property
    def prefilled_contact_id(self) -> str | None:
        return self.conversation.hubspot_contact_id

    @property
    def phone_number(self) -> PhoneNumber | None:
        return self.identity.phone if self.identity else None

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
