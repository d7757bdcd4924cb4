"""The CALL engagement callsync creates for a call session: its properties and inline associations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.counterparty import CallDirection, Counterparty
from callsync_dagster.core.models import CallSession
from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number


def call_timestamp(session: CallSession) -> datetime | None:
    """When the call happened: `started_at`, else `ended_at`; times are never invented."""
    return session.started_at or session.ended_at


def format_hubspot_timestamp(moment: datetime) -> str:
    """Format as ISO-8601 in UTC with milliseconds, the form HubSpot returns."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone; timestamptz columns always do")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def call_duration_ms(session: CallSession) -> int:
    """Return the talk time in milliseconds, from `answered_at` to `ended_at`: 0 when unanswered, never negative."""
    if session.answered_at is None or session.ended_at is None:
        return 0
    milliseconds = int((session.ended_at - session.answered_at).total_seconds() * 1000)
    return max(milliseconds, 0)


def call_title(direction: CallDirection, counterparty: PhoneNumber | None, moment: datetime, timezone: str) -> str:
    local_date = moment.astimezone(ZoneInfo(timezone)).date().isoformat()
    number = counterparty.display if counterparty else "an unknown number"
    if direction is CallDirection.INBOUND:
        return f"Inbound call from {number} on {local_date}"
    return f"Outbound call to {number} on {local_date}"


def build_call_properties(
    session: CallSession,
    counterparty: Counterparty,
    body_html: str,
    owner_id: str | None,
    timezone: str,
    default_region: str,
) -> dict[str, str]:
    """Map a call session to HubSpot CALL properties; every value is a string, as on the wire."""
    moment = call_timestamp(session)
    if moment is None:
        raise ValueError(f"call session {session.id} has neither started_at nor ended_at, so it has no time to log")

    answered = session.answered_at is not None
    properties = {
        "hs_timestamp": format_hubspot_timestamp(moment),
        "hs_call_title": call_title(counterparty.direction, counterparty.number, moment, timezone),
        "hs_call_body": body_html,
        "hs_call_direction": counterparty.direction.value,
        "hs_call_duration": str(call_duration_ms(session)),
        "hs_call_status": hs.CALL_STATUS_COMPLETED if answered else hs.CALL_STATUS_NO_ANSWER,
        "hs_call_disposition": hs.DISPOSITION_CONNECTED if answered else hs.DISPOSITION_NO_ANSWER,
        "hs_call_external_id": session.telavox_call_id,
    }

    # The company's own side may be an extension with no E.164 form; HubSpot gets only real numbers.
    for property_name, raw in (
        ("hs_call_from_number", session.from_number),
        ("hs_call_to_number", session.to_number),
    ):
        number = normalize_phone_number(raw, default_region)
        if isinstance(number, PhoneNumber):
            properties[property_name] = number.e164

    # HubSpot accepts only HTTPS recording URLs and rejects the whole create otherwise.
    if session.recording_url and session.recording_url.strip().lower().startswith("https://"):
        properties["hs_call_recording_url"] = session.recording_url.strip()
    if owner_id:
        properties["hubspot_owner_id"] = owner_id
    return properties


def build_call_associations(
    contact_id: str | None, company_id: str | None, deal_id: str | None
) -> list[dict[str, Any]]:
    """Inline associations for the CALL create: contact (194), its primary company (182), deal (206)."""
    targets = [(contact_id, hs.CALL_TO_CONTACT), (company_id, hs.CALL_TO_COMPANY), (deal_id, hs.CALL_TO_DEAL)]
    return [
        {
            "to": {"id": object_id},
            "types": [{"associationCategory": hs.ASSOCIATION_CATEGORY_HUBSPOT_DEFINED, "associationTypeId": type_id}],
        }
        for object_id, type_id in targets
        if object_id
    ]
