"""Contact matching: confirm HubSpot's phone search on the client and choose one contact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number


@dataclass(frozen=True)
class ContactMatch:
    contact_id: str
    # Every confirmed contact id when more than one matched, in the order they were ranked.
    ambiguous_ids: tuple[str, ...] = ()


def confirm_contact_matches(
    counterparty: PhoneNumber, search_results: list[dict[str, Any]], default_region: str
) -> list[str]:
    """Keep the search results whose `phone` or `mobilephone` is the same number as the counterparty.

    HubSpot's phone search uses calculated properties with undocumented normalisation, so a hit is only a
    candidate until its stored numbers normalise to the same E.164.
    """
    confirmed = []
    for contact in search_results:
        properties = contact.get("properties") or {}
        for property_name in ("phone", "mobilephone"):
            stored = normalize_phone_number(properties.get(property_name), default_region)
            if isinstance(stored, PhoneNumber) and stored.e164 == counterparty.e164:
                confirmed.append(str(contact["id"]))
                break
    return confirmed


def choose_contact(confirmed_ids: list[str]) -> ContactMatch | None:
    """Pick one contact from the confirmed matches, deterministically.

    The oldest contact (lowest numeric id; HubSpot ids grow with creation) wins, because it is the record
    most likely to carry the customer's history and a later duplicate is usually the mistake.
    """
    if not confirmed_ids:
        return None
    ranked = sorted(set(confirmed_ids), key=lambda contact_id: (len(contact_id), contact_id))
    if len(ranked) == 1:
        return ContactMatch(contact_id=ranked[0])
    return ContactMatch(contact_id=ranked[0], ambiguous_ids=tuple(ranked))


def new_contact_properties(counterparty: PhoneNumber) -> dict[str, str]:
    """Properties of a contact created for an unknown number.

    HubSpot needs a name or email on a contact; the formatted number is the most readable name there is.
    """
    return {"phone": counterparty.e164, "firstname": counterparty.display}
