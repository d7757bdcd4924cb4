"""Plain data that flows through the call workflow, validated at the database boundary with pydantic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class SyncStatus(StrEnum):
    PENDING = "pending"
    SYNCING = "syncing"
    SYNCED = "synced"
    SKIPPED = "skipped"
    FAILED = "failed"


class CallSession(BaseModel):
    """One row of `telavox_call_sessions`, as far as callsync reads it."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    telavox_call_id: str
    telavox_org_id: str | None = None
    hubspot_portal_id: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    agent_user_id: str | None = None
    hubspot_contact_id: str | None = None
    hubspot_deal_id: str | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    recording_url: str | None = None
    transcription_status: str | None = None
    hubspot_engagement_id: str | None = None
    # When callsync last sent a CALL create for this session (set before sending).
    hubspot_call_requested_at: datetime | None = None
    sync_attempts: int = 0
    updated_at: datetime | None = None


class Transcription(BaseModel):
    """The newest `transcriptions` row of a session, or the session's own transcript columns."""

    model_config = ConfigDict(frozen=True)

    full_text: str | None = None
    speaker_labels: Any = None
    summary: str | None = None
    language: str | None = None
    source: str = Field(description="'transcriptions' or 'call_session'")


class SyncLogEntry(BaseModel):
    """One action taken for a session, written to `callsync_sync_log`."""

    model_config = ConfigDict(frozen=True)

    action: str
    hubspot_object_id: str | None = None
    hubspot_correlation_id: str | None = None
    error: str | None = None
    detail: dict[str, Any] | None = None


class SessionOutcome(BaseModel):
    """The end state of a session in a run: synced, skipped with a reason, or failed with a message."""

    model_config = ConfigDict(frozen=True)

    status: SyncStatus
    reason: str | None = None
    # A stable short name for the reason (e.g. hidden_number), for counting and filtering.
    reason_code: str | None = None
    retryable: bool = False
    # False for failures that are no fault of the session (a rejected token, a used-up daily limit), so
    # they do not bring it closer to its attempt limit.
    charge_attempt: bool = True
    # When set, the next attempt is at this time instead of the backoff's (HubSpot's search lag, a daily
    # limit's reset).
    retry_at: datetime | None = None
    hubspot_contact_id: str | None = None
    hubspot_company_id: str | None = None
    hubspot_engagement_id: str | None = None
