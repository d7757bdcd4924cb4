"""Search bodies for contacts by phone number and for CALLs by external id, checked against HubSpot's limits."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.hubspot_search import (
    BODY_CHARS_BUDGET,
    MAX_IN_VALUES,
    ContactSearchStrategy,
    body_chars,
    call_search_bodies,
    contact_search_bodies,
)
from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.resources.hubspot import HubSpotResource
from tests.conftest import seed_standin

# HubSpot's search limits as hubspot_search states them, written out so that a change of its constants shows up.
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS_TOTAL = 18
MAX_BODY_CHARS = 3000

PHONE_PROPERTIES = (hs.SEARCHABLE_PHONE_PROPERTY, hs.SEARCHABLE_MOBILE_PROPERTY)
STRATEGIES: tuple[ContactSearchStrategy, ...] = ("many_numbers", "few_numbers")


def national_numbers(count: int) -> list[str]:
    """Return `count` distinct Swedish mobile numbers in national significant form ("70" and seven digits)."""
    return [f"70{index:07d}" for index in range(count)]


def filters_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [search_filter for group in body["filterGroups"] for search_filter in group["filters"]]


def searched_pairs(bodies: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return every (property, value) pair the bodies search, once per occurrence."""
    pairs: list[tuple[str, str]] = []
    for body in bodies:
        for search_filter in filters_of(body):
            if search_filter["operator"] == "IN":
                pairs.extend((search_filter["propertyName"], value) for value in search_filter["values"])
            else:
                pairs.append((search_filter["propertyName"], search_filter["value"]))
    return pairs


def assert_within_hubspot_limits(body: dict[str, Any]) -> None:
    groups = body["filterGroups"]
    assert len(groups) <= MAX_FILTER_GROUPS, f"{len(groups)} filter groups"
    for group in groups:
        assert len(group["filters"]) <= MAX_FILTERS_PER_GROUP, f"{len(group['filters'])} filters in one group"
    assert len(filters_of(body)) <= MAX_FILTERS_TOTAL, f"{len(filters_of(body))} filters in all"
    assert body_chars(body) <= MAX_BODY_CHARS, f"body of {body_chars(body)} characters"


# Contact searches


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("count", [1, 7, 300], ids=["1-number", "7-numbers", "300-numbers"])
def test_contact_bodies_within_limits(strategy: ContactSearchStrategy, count: int) -> None:
    bodies = contact_search_bodies(national_numbers(count), strategy)

    assert bodies
    for body in bodies:
        assert_within_hubspot_limits(body)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("count", [1, 7, 300], ids=["1-number", "7-numbers", "300-numbers"])
def test_contact_bodies_search_both_properties(strategy: ContactSearchStrategy, count: int) -> None:
    numbers = national_numbers(count)

    pairs = searched_pairs(contact_search_bodies(numbers, strategy))

    expected = {(name, number) for number in numbers for name in PHONE_PROPERTIES}
    assert set(pairs) == expected
    assert len(pairs) == len(expected), "a (property, number) pair is searched more than once"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_contact_bodies_search_duplicates_once(strategy: ContactSearchStrategy) -> None:
    numbers = ["701234567", "8123456", "701234567", "8123456", "701234567"]

    pairs = searched_pairs(contact_search_bodies(numbers, strategy))

    assert sorted(pairs) == sorted((name, number) for number in ("701234567", "8123456") for name in PHONE_PROPERTIES)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_contact_bodies_empty_for_no_numbers(strategy: ContactSearchStrategy) -> None:
    assert contact_search_bodies([], strategy) == []


@pytest.mark.parametrize("count", [1, 7, 300], ids=["1-number", "7-numbers", "300-numbers"])
def test_few_numbers_packs_five_eq_pairs(count: int) -> None:
    bodies = contact_search_bodies(national_numbers(count), "few_numbers")

    pair_count = 2 * count
    assert len(bodies) == -(-pair_count // 5)
    for body in bodies[:-1]:
        assert len(body["filterGroups"]) == 5
    assert len(bodies[-1]["filterGroups"]) == pair_count - 5 * (len(bodies) - 1)
    for body in bodies:
        # Filters inside one group are ANDed, so each (property, number) pair needs a group of its own.
        assert all(len(group["filters"]) == 1 for group in body["filterGroups"])
        assert {search_filter["operator"] for search_filter in filters_of(body)} == {"EQ"}


@pytest.mark.parametrize("count", [1, 7, 300], ids=["1-number", "7-numbers", "300-numbers"])
def test_many_numbers_uses_in_per_property(count: int) -> None:
    bodies = contact_search_bodies(national_numbers(count), "many_numbers")

    for body in bodies:
        assert [group["filters"][0]["propertyName"] for group in body["filterGroups"]] == list(PHONE_PROPERTIES)
        assert all(len(group["filters"]) == 1 for group in body["filterGroups"])
        assert {search_filter["operator"] for search_filter in filters_of(body)} == {"IN"}
        phone_values, mobile_values = (search_filter["values"] for search_filter in filters_of(body))
        assert phone_values == mobile_values
        assert len(phone_values) <= MAX_IN_VALUES


@pytest.mark.parametrize(
    "digits",
    [9, 40],
    ids=["short-numbers-fill-in-values", "long-values-fill-char-budget"],
)
def test_many_numbers_fills_each_body(digits: int) -> None:
    numbers = [f"{index:0{digits}d}" for index in range(1, 301)]

    bodies = contact_search_bodies(numbers, "many_numbers")

    assert len(bodies) > 1
    for body, following in itertools.pairwise(bodies):
        values = body["filterGroups"][0]["filters"][0]["values"]
        next_value = following["filterGroups"][0]["filters"][0]["values"][0]
        grown = {
            **body,
            "filterGroups": [
                {"filters": [{**group["filters"][0], "values": [*values, next_value]}]}
                for group in body["filterGroups"]
            ],
        }
        # A body is closed only when the next number would break the value cap or the character budget.
        assert len(values) + 1 > MAX_IN_VALUES or body_chars(grown) > BODY_CHARS_BUDGET


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_contact_value_too_long_raises(strategy: ContactSearchStrategy) -> None:
    too_long = "7" * MAX_BODY_CHARS

    with pytest.raises(ValueError, match="too long"):
        contact_search_bodies(["701234567", too_long], strategy)


# CALL searches


@pytest.mark.parametrize("count", [1, 7, 300], ids=["1-id", "7-ids", "300-ids"])
def test_call_bodies_within_limits_and_complete(count: int) -> None:
    external_ids = [f"lid-{index:012x}" for index in range(count)]

    bodies = call_search_bodies(external_ids)

    for body in bodies:
        assert_within_hubspot_limits(body)
        assert [search_filter["propertyName"] for search_filter in filters_of(body)] == [hs.CALL_EXTERNAL_ID_PROPERTY]
        assert filters_of(body)[0]["operator"] == "IN"
        assert len(filters_of(body)[0]["values"]) <= MAX_IN_VALUES
    assert sorted(value for _, value in searched_pairs(bodies)) == sorted(external_ids)


def test_call_ids_lowercased_and_deduplicated() -> None:
    bodies = call_search_bodies(["LID-AbC123", "lid-abc123", "LID-XYZ", "LID-xyz", "Lid-New"])

    assert searched_pairs(bodies) == [
        (hs.CALL_EXTERNAL_ID_PROPERTY, "lid-abc123"),
        (hs.CALL_EXTERNAL_ID_PROPERTY, "lid-xyz"),
        (hs.CALL_EXTERNAL_ID_PROPERTY, "lid-new"),
    ]


def test_call_bodies_empty_for_no_ids() -> None:
    assert call_search_bodies([]) == []


def test_call_id_too_long_raises() -> None:
    with pytest.raises(ValueError, match="too long"):
        call_search_bodies(["lid-1", "x" * MAX_BODY_CHARS])


# Character count


def test_body_chars_matches_httpx_body() -> None:
    body = {"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Åsa Öberg"}]}]}

    sent = httpx.Request("POST", "http://127.0.0.1/search", json=body).content.decode("utf-8")

    assert body_chars(body) == len(sent)


# Against the stand-in, which enforces the same limits and rejects a body that breaks one with a 400


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_contact_bodies_find_seeded_contacts(
    strategy: ContactSearchStrategy, hubspot: HubSpotResource, standin: StandinServer
) -> None:
    numbers = national_numbers(130)
    seeded = seed_standin(
        standin,
        {
            "contacts": [
                {"properties": {"firstname": "Phone", "phone": f"+46 {numbers[0]}"}},
                {"properties": {"firstname": "Mobile", "mobilephone": f"0{numbers[64]}"}},
                {"properties": {"firstname": "Last", "phone": f"0{numbers[129]}"}},
                {"properties": {"firstname": "Other", "phone": "+46 8 123 456 78"}},
            ]
        },
    )["contacts"]

    found: set[str] = set()
    with hubspot.open_client() as client:
        for body in contact_search_bodies(numbers, strategy):
            found.update(result["id"] for result in client.search("contacts", body))

    assert found == set(seeded[:3])
