"""The HubSpot client against the stand-in over HTTP: retries, typed errors, caching."""

from collections.abc import Iterator

import httpx
import pytest

from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.resources.hubspot import HubSpotClient, HubSpotResource
from callsync_dagster.resources.hubspot_errors import (
    HubSpotAuthError,
    HubSpotNotFoundError,
    HubSpotRateLimitError,
    HubSpotTransientError,
    HubSpotValidationError,
)
from tests.conftest import seed_standin


@pytest.fixture
def client(hubspot: HubSpotResource) -> Iterator[HubSpotClient]:
    with hubspot.open_client() as opened:
        yield opened


def _fault(standin: StandinServer, **spec: object) -> None:
    httpx.post(f"{standin.url}/_standin/faults", json=spec).raise_for_status()


def test_read_retried_after_503(client: HubSpotClient, standin: StandinServer) -> None:
    _fault(standin, status=503, count=2, path_contains="/owners")
    assert client.find_owner_id_by_email("nobody@example.se") is None
    assert client.request_count == 3


def test_read_gives_up_after_retries(client: HubSpotClient, standin: StandinServer) -> None:
    _fault(standin, status=504, count=20, path_contains="/owners")
    with pytest.raises(HubSpotTransientError) as raised:
        client.find_owner_id_by_email("nobody@example.se")
    assert raised.value.status == 504
    assert raised.value.correlation_id
    assert client.request_count == 5


def test_ten_secondly_429_retried(client: HubSpotClient, standin: StandinServer) -> None:
    _fault(standin, status=429, count=1, path_contains="/owners", policy_name="TEN_SECONDLY_ROLLING")
    assert client.find_owner_id_by_email("nobody@example.se") is None
    assert client.request_count == 2


def test_daily_429_not_retried(client: HubSpotClient, standin: StandinServer) -> None:
    _fault(standin, status=429, count=1, path_contains="/owners", policy_name="DAILY")
    with pytest.raises(HubSpotRateLimitError) as raised:
        client.find_owner_id_by_email("nobody@example.se")
    assert raised.value.policy_name == "DAILY"
    assert client.request_count == 1


def test_create_not_retried_after_502(client: HubSpotClient, standin: StandinServer) -> None:
    _fault(standin, status=502, count=1, path_contains="/crm/v3/objects/contacts", method="POST")
    with pytest.raises(HubSpotTransientError) as raised:
        client.create_contact({"firstname": "Örjan", "phone": "+46701234567"})
    assert raised.value.may_have_applied is True
    assert client.request_count == 1


def test_create_not_retried_after_503(client: HubSpotClient, standin: StandinServer) -> None:
    # HubSpot lists 503 among the statuses after which a POST may already have been applied.
    _fault(standin, status=503, count=1, path_contains="/crm/v3/objects/contacts", method="POST")
    with pytest.raises(HubSpotTransientError) as raised:
        client.create_contact({"firstname": "Örjan", "phone": "+46701234567"})
    assert raised.value.may_have_applied is True
    assert client.request_count == 1


def test_create_retried_after_429(client: HubSpotClient, standin: StandinServer) -> None:
    _fault(standin, status=429, count=1, path_contains="/crm/v3/objects/contacts", method="POST")
    contact_id = client.create_contact({"firstname": "Örjan", "phone": "+46701234567"})
    assert contact_id
    assert client.request_count == 2


def test_bad_token_raises_auth_error(standin: StandinServer) -> None:
    secret = "pat-na1-wrong"
    client = HubSpotClient(secret, base_url=standin.url, backoff_initial_seconds=0.01)
    try:
        with pytest.raises(HubSpotAuthError) as raised:
            client.find_owner_id_by_email("anna@example.se")
    finally:
        client.close()
    assert raised.value.status == 401
    assert "HUBSPOT_ACCESS_TOKEN" in str(raised.value)
    assert secret not in str(raised.value)
    assert client.request_count == 1


def test_validation_error_carries_evidence(client: HubSpotClient) -> None:
    with pytest.raises(HubSpotValidationError) as raised:
        client.create_call({"hs_call_title": "no timestamp"}, [])
    assert raised.value.status == 400
    assert raised.value.category == "VALIDATION_ERROR"
    assert raised.value.correlation_id
    assert "correlation id" in str(raised.value)


def test_missing_call_not_found(client: HubSpotClient) -> None:
    with pytest.raises(HubSpotNotFoundError):
        client.get_call("123456789")


def test_conflict_returns_existing_contact(client: HubSpotClient, standin: StandinServer) -> None:
    existing = seed_standin(standin, {"contacts": [{"properties": {"email": "asa@example.se"}}]})["contacts"][0]
    assert client.create_contact({"email": "ASA@example.se", "firstname": "Åsa"}) == existing


def test_owner_lookup_cached(client: HubSpotClient, standin: StandinServer) -> None:
    owner_id = seed_standin(standin, {"owners": [{"email": "anna@example.se", "firstName": "Anna", "lastName": "A"}]})[
        "owners"
    ][0]
    assert client.find_owner_id_by_email("Anna@Example.se") == owner_id
    assert client.find_owner_id_by_email("anna@example.se") == owner_id
    assert client.request_count == 1


def test_phone_search_finds_any_format(client: HubSpotClient, standin: StandinServer) -> None:
    seed_standin(
        standin,
        {
            "contacts": [
                {"properties": {"firstname": "A", "phone": "+46 70-123 45 67"}},
                {"properties": {"firstname": "B", "mobilephone": "070-1234567"}},
                {"properties": {"firstname": "C", "phone": "08-123 456 78"}},
            ]
        },
    )
    results = client.search_contacts_by_phone("701234567")
    assert sorted(result["properties"]["firstname"] for result in results) == ["A", "B"]


def test_primary_company_read(client: HubSpotClient, standin: StandinServer) -> None:
    companies = seed_standin(
        standin, {"companies": [{"properties": {"name": "Other"}}, {"properties": {"name": "Main"}}]}
    )
    contact_id = seed_standin(
        standin, {"contacts": [{"properties": {"firstname": "A"}, "primary_company_id": companies["companies"][1]}]}
    )["contacts"][0]
    assert client.get_primary_company_id(contact_id) == companies["companies"][1]


def test_call_search_by_external_id(client: HubSpotClient) -> None:
    properties = {"hs_timestamp": "2026-04-03T07:00:30.646Z", "hs_call_external_id": "LID-1"}
    first = client.create_call(properties, [])
    client.create_call({**properties, "hs_call_external_id": "LID-2"}, [])
    assert client.search_calls_by_external_id("LID-1") == [first]
