"""Search request bodies that look up many contacts or CALLs at once, within HubSpot's search limits.

HubSpot's search takes at most 5 filter groups (ORed), 6 filters per group, 18 filters in all and a body of
3,000 characters. The bodies here are packed as full as those limits allow, so a batch of sessions costs as
few of the scarce search requests (5 per second per account) as possible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from callsync_dagster.core import hubspot_constants as hs

ContactSearchStrategy = Literal["many_numbers", "few_numbers"]

MAX_FILTER_GROUPS = 5
MAX_BODY_CHARS = 3000
# The character count is of the body as sent (compact JSON); the margin covers a client that adds spaces.
BODY_CHARS_BUDGET = MAX_BODY_CHARS - 100
# HubSpot documents no limit on the values of one IN filter; 100 matches its batch size.
MAX_IN_VALUES = 100
SEARCH_PAGE_SIZE = 100

_PHONE_PROPERTIES = (hs.SEARCHABLE_PHONE_PROPERTY, hs.SEARCHABLE_MOBILE_PROPERTY)


def body_chars(body: dict[str, Any]) -> int:
    """Return the length of `body` as httpx sends it: compact JSON, non-ASCII characters kept."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")))


def contact_search_bodies(national_numbers: Sequence[str], strategy: ContactSearchStrategy) -> list[dict[str, Any]]:
    """Return the search bodies that find the contacts of these numbers between them.

    `many_numbers` puts dozens of numbers into one `IN` filter per phone property. `few_numbers` sends one
    `EQ` filter per number and property, five to a request: slower, but `EQ` is the operator HubSpot
    documents for its calculated phone properties, whose behaviour under `IN` it does not describe.
    Both search the national significant number, because HubSpot leaves the country code out of them.
    """
    numbers = list(dict.fromkeys(national_numbers))
    if strategy == "many_numbers":
        return list(_in_filter_bodies(numbers))
    return list(_eq_filter_bodies(numbers))


def _contact_body(filter_groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "filterGroups": filter_groups,
        "properties": list(hs.CONTACT_PROPERTIES_READ),
        "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
        "limit": SEARCH_PAGE_SIZE,
    }


def _in_filter_bodies(numbers: list[str]) -> Iterator[dict[str, Any]]:
    def body_for(values: list[str]) -> dict[str, Any]:
        return _contact_body(
            [{"filters": [{"propertyName": name, "operator": "IN", "values": values}]} for name in _PHONE_PROPERTIES]
        )

    yield from _pack(numbers, body_for)


def _eq_filter_bodies(numbers: list[str]) -> Iterator[dict[str, Any]]:
    # Each (property, number) pair is its own group, because filters inside a group are ANDed. A number's
    # two pairs may land in different requests, so the caller merges all results before matching.
    def body_for(pairs: list[tuple[str, str]]) -> dict[str, Any]:
        return _contact_body(
            [{"filters": [{"propertyName": name, "operator": "EQ", "value": number}]} for name, number in pairs]
        )

    yield from _pack([(name, number) for number in numbers for name in _PHONE_PROPERTIES], body_for, MAX_FILTER_GROUPS)


def call_search_bodies(external_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Return the search bodies that find CALLs by `hs_call_external_id`, many ids per request.

    HubSpot wants lower-case values for `IN` on text properties and compares them without case, so the
    caller must check each result's exact external id.
    """

    def body_for(values: list[str]) -> dict[str, Any]:
        return {
            "filterGroups": [
                {"filters": [{"propertyName": hs.CALL_EXTERNAL_ID_PROPERTY, "operator": "IN", "values": values}]}
            ],
            "properties": [hs.CALL_EXTERNAL_ID_PROPERTY],
            "limit": SEARCH_PAGE_SIZE,
        }

    lowered = list(dict.fromkeys(external_id.lower() for external_id in external_ids))
    return list(_pack(lowered, body_for))


def _pack(values: list[Any], body_for: Any, max_values: int = MAX_IN_VALUES) -> Iterator[dict[str, Any]]:
    """Yield bodies from `body_for(chunk)`, each chunk as long as the body budget and `max_values` allow."""
    chunk: list[Any] = []
    for value in values:
        candidate = [*chunk, value]
        if chunk and (len(candidate) > max_values or body_chars(body_for(candidate)) > BODY_CHARS_BUDGET):
            yield body_for(chunk)
            candidate = [value]
        if body_chars(body_for(candidate)) > BODY_CHARS_BUDGET:
            raise ValueError(f"search value {str(value)[:60]!r}... is too long for one HubSpot search body")
        chunk = candidate
    if chunk:
        yield body_for(chunk)
