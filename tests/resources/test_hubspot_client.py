"""HubSpotClient against the HubSpot stand-in over HTTP: paging, batches, owners, retries, pauses and typed errors.

Faults are queued on the stand-in through POST /_standin/faults. Tests that need other stand-in settings (a lower
rate limit, a daily limit, scopes per token) start a stand-in of their own on a free port.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.resources.hubspot import HubSpotClient, HubSpotResource
from callsync_dagster.resources.hubspot_errors import (
    HubSpotAuthError,
    HubSpotPausedError,
    HubSpotRateLimitError,
    HubSpotTransientError,
    HubSpotValidationError,
)
from callsync_dagster.resources.rate_limit import GENERAL_WINDOW_SECONDS, WINDOW_MARGIN, LocalRateLimiter
from tests.conftest import STANDIN_TOKEN, seed_standin, standin_objects

ACCOUNT_TIME_ZONE = "Europe/Stockholm"
SEARCH_PATH = "/crm/v3/objects/contacts/search"
BATCH_CREATE_PATH = "/crm/v3/objects/contacts/batch/create"
SEARCH_ROUTE = "POST /crm/v3/objects/{object_type}/search"
OWNERS_ROUTE = "GET /crm/v3/owners"
CLIENT_LOGGER = "callsync_dagster.resources.hubspot"
MAX_RETRIES = 4


class FakeClock:
    """A monotonic clock that only `sleep` moves, so a limiter's waits take no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def make_client() -> Iterator[Any]:
    """Build HubSpotClients with short backoff delays, and close them after the test."""
    clients: list[HubSpotClient] = []

    def make(base_url: str, **options: Any) -> HubSpotClient:
        settings: dict[str, Any] = {
            "access_token": STANDIN_TOKEN,
            "base_url": base_url,
            "timeout_seconds": 5.0,
            "max_retries": MAX_RETRIES,
            "backoff_initial_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            "limiter": LocalRateLimiter(1000, 100),
            "account_time_zone": ACCOUNT_TIME_ZONE,
        }
        settings.update(options)
        client = HubSpotClient(**settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Any, standin: StandinServer) -> HubSpotClient:
    new_client: HubSpotClient = make_client(standin.url)
    return new_client


def queue_fault(server: StandinServer, **spec: Any) -> None:
    httpx.post(f"{server.url}/_standin/faults", json=spec).raise_for_status()


def request_counts(server: StandinServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/_standin/requests")
    response.raise_for_status()
    counts: dict[str, Any] = response.json()
    return counts


def contact_inputs(*first_names: str) -> list[dict[str, Any]]:
    return [
        {"objectWriteTraceId": f"trace-{name.lower()}", "properties": {"firstname": name, "phone": "+46701234567"}}
        for name in first_names
    ]


def closed_local_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# Search


def test_search_follows_pages(client: HubSpotClient, standin: StandinServer) -> None:
    matching = seed_standin(standin, {"contacts": [{"properties": {"firstname": "Paging"}} for _ in range(120)]})
    seed_standin(standin, {"contacts": [{"properties": {"firstname": "Other"}} for _ in range(3)]})
    body = {"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Paging"}]}]}

    results = client.search("contacts", {**body, "limit": 50})

    assert [result["id"] for result in results] == matching["contacts"]
    assert client.requests_by_kind["search"] == 3
    assert request_counts(standin)["by_route"] == {SEARCH_ROUTE: 3}


def test_search_retries_502_burst(client: HubSpotClient, standin: StandinServer) -> None:
    seeded = seed_standin(standin, {"contacts": [{"properties": {"firstname": "Åsa"}}]})["contacts"]
    queue_fault(standin, status=502, count=2, path=SEARCH_PATH)

    results = client.search("contacts", {"filterGroups": [], "limit": 10})

    assert [result["id"] for result in results] == seeded
    assert client.request_count == 3
    assert request_counts(standin)["by_status"] == {"502": 2, "200": 1}


def test_search_gives_up_after_retries(client: HubSpotClient, standin: StandinServer) -> None:
    queue_fault(standin, status=503, count=20, path=SEARCH_PATH)

    with pytest.raises(HubSpotTransientError) as raised:
        client.search("contacts", {"filterGroups": [], "limit": 10})

    assert raised.value.status == 503
    assert raised.value.correlation_id
    assert client.request_count == MAX_RETRIES + 1


def test_retry_warnings_omit_token(
    client: HubSpotClient, standin: StandinServer, caplog: pytest.LogCaptureFixture
) -> None:
    queue_fault(standin, status=502, count=2, path=SEARCH_PATH)

    with caplog.at_level(logging.WARNING, logger=CLIENT_LOGGER):
        client.search("contacts", {"filterGroups": [], "limit": 10})

    retries = [record.getMessage() for record in caplog.records if record.name == CLIENT_LOGGER]
    assert len(retries) == 2
    assert all(SEARCH_PATH in message for message in retries)
    assert STANDIN_TOKEN not in caplog.text


# Batch create and read


def test_batch_create_reports_bad_trace_id(client: HubSpotClient, standin: StandinServer) -> None:
    inputs = contact_inputs("Good")
    inputs.append({"objectWriteTraceId": "trace-bad", "properties": {"firstname": "Bad", "lifecyclestage": "vip"}})

    result = client.batch_create("contacts", inputs)

    assert [created["objectWriteTraceId"] for created in result.results] == ["trace-good"]
    assert len(result.errors) == 1
    assert result.errors[0].ids("objectWriteTraceId") == ["trace-bad"]
    assert result.errors[0].category == "VALIDATION_ERROR"
    assert "lifecyclestage" in result.errors[0].message
    assert [contact["properties"]["firstname"] for contact in standin_objects(standin, "contacts")] == ["Good"]


def test_batch_create_without_trace_ids_fails_whole(client: HubSpotClient, standin: StandinServer) -> None:
    inputs = [
        {"properties": {"firstname": "Good"}},
        {"properties": {"firstname": "Bad", "lifecyclestage": "vip"}},
    ]

    with pytest.raises(HubSpotValidationError) as raised:
        client.batch_create("contacts", inputs)

    assert raised.value.status == 400
    assert standin_objects(standin, "contacts") == []


def test_batch_create_not_retried_after_502(client: HubSpotClient, standin: StandinServer) -> None:
    # The stand-in creates the contact and then responds with 502, as HubSpot may after a write.
    queue_fault(standin, status=502, count=3, path=BATCH_CREATE_PATH, apply_request=True)

    with pytest.raises(HubSpotTransientError) as raised:
        client.batch_create("contacts", contact_inputs("Once"))

    assert raised.value.status == 502
    assert raised.value.may_have_applied is True
    assert client.request_count == 1
    assert len(standin_objects(standin, "contacts")) == 1


def test_batch_create_retried_after_429(client: HubSpotClient, standin: StandinServer) -> None:
    queue_fault(standin, status=429, count=1, path=BATCH_CREATE_PATH, policy_name="TEN_SECONDLY_ROLLING")

    result = client.batch_create("contacts", contact_inputs("Retried"))

    assert [created["objectWriteTraceId"] for created in result.results] == ["trace-retried"]
    assert client.request_count == 2
    assert client.rate_limited_count == 1
    assert len(standin_objects(standin, "contacts")) == 1


def test_batch_create_retried_after_423(client: HubSpotClient, standin: StandinServer) -> None:
    # A 423 means the record was locked and nothing was written, so the client retries the create after at least 2 s.
    queue_fault(standin, status=423, count=1, path=BATCH_CREATE_PATH)

    result = client.batch_create("contacts", contact_inputs("Locked"))

    assert [created["objectWriteTraceId"] for created in result.results] == ["trace-locked"]
    assert client.request_count == 2
    assert len(standin_objects(standin, "contacts")) == 1


def test_ten_secondly_429_gives_up_after_retries(client: HubSpotClient, standin: StandinServer) -> None:
    queue_fault(standin, status=429, count=20, path=BATCH_CREATE_PATH, policy_name="TEN_SECONDLY_ROLLING")

    with pytest.raises(HubSpotRateLimitError) as raised:
        client.batch_create("contacts", contact_inputs("Limited"))

    assert raised.value.policy_name == "TEN_SECONDLY_ROLLING"
    # A 429 gets a longer retry budget than other failures: a storm must outlast it to fail the request.
    assert client.request_count == max(MAX_RETRIES, 8) + 1
    assert standin_objects(standin, "contacts") == []


def test_batch_create_retried_when_refused(make_client: Any) -> None:
    # A refused connection means the request never left, so even a create is sent again.
    client = make_client(f"http://127.0.0.1:{closed_local_port()}")

    with pytest.raises(HubSpotTransientError) as raised:
        client.batch_create("contacts", contact_inputs("Nowhere"))

    assert raised.value.may_have_applied is False
    assert raised.value.status is None
    assert client.request_count == MAX_RETRIES + 1


def test_batch_read_reports_missing_ids(client: HubSpotClient, standin: StandinServer) -> None:
    first, second = seed_standin(
        standin,
        {
            "contacts": [
                {"properties": {"firstname": "A", "phone": "070-111 11 11"}},
                {"properties": {"firstname": "B"}},
            ]
        },
    )["contacts"]

    result = client.batch_read("contacts", [first, "999999", second], ["firstname", "phone"])

    assert sorted(read["id"] for read in result.results) == sorted([first, second])
    by_id = {read["id"]: read["properties"] for read in result.results}
    assert by_id[first]["phone"] == "070-111 11 11"
    assert len(result.errors) == 1
    assert result.errors[0].ids("ids") == ["999999"]


# Associations


def test_association_read_returns_primary_company(client: HubSpotClient, standin: StandinServer) -> None:
    other, main = seed_standin(
        standin, {"companies": [{"properties": {"name": "Other"}}, {"properties": {"name": "Main"}}]}
    )["companies"]
    unlabeled = {"associationCategory": hs.ASSOCIATION_CATEGORY_HUBSPOT_DEFINED, "associationTypeId": 279}
    with_primary, with_other, alone = seed_standin(
        standin,
        {
            "contacts": [
                {"properties": {"firstname": "A"}, "primary_company_id": main},
                {"properties": {"firstname": "B"}, "associations": [{"to": {"id": other}, "types": [unlabeled]}]},
                {"properties": {"firstname": "C"}},
            ]
        },
    )["contacts"]

    associated = client.batch_read_associations("contacts", "companies", [with_primary, with_other, alone])

    assert associated == {
        with_primary: {main: {hs.CONTACT_TO_PRIMARY_COMPANY, 279}},
        with_other: {other: {279}},
        alone: {},
    }


def test_association_create_links_both_directions(client: HubSpotClient, standin: StandinServer) -> None:
    seeded = seed_standin(
        standin,
        {
            "calls": [{"properties": {"hs_timestamp": "2026-04-03T07:00:30.646Z"}}],
            "contacts": [{"properties": {"firstname": "A"}}],
        },
    )
    call, contact = seeded["calls"][0], seeded["contacts"][0]

    client.batch_create_associations("calls", "contacts", hs.CALL_TO_CONTACT, [(call, contact)])
    client.batch_create_associations("calls", "contacts", hs.CALL_TO_CONTACT, [(call, contact)])

    stored = httpx.get(f"{standin.url}/_standin/associations").json()["results"]
    assert sorted((row["fromObjectId"], row["toObjectId"], row["associationTypeId"]) for row in stored) == sorted(
        [(call, contact, hs.CALL_TO_CONTACT), (contact, call, 193)]
    )
    assert client.batch_read_associations("calls", "contacts", [call]) == {call: {contact: {hs.CALL_TO_CONTACT}}}


def test_association_create_reports_missing_target(client: HubSpotClient, standin: StandinServer) -> None:
    seeded = seed_standin(
        standin,
        {
            "calls": [{"properties": {"hs_timestamp": "2026-04-03T07:00:30.646Z"}}],
            "contacts": [{"properties": {"firstname": "A"}}],
        },
    )
    call, contact = seeded["calls"][0], seeded["contacts"][0]

    rejected = client.batch_create_associations(
        "calls", "contacts", hs.CALL_TO_CONTACT, [(call, contact), (call, "999999")]
    )

    assert [(from_id, to_id) for from_id, to_id, _ in rejected] == [(call, "999999")]
    assert "999999" in rejected[0][2].message
    assert contact in {str(link["id"]) for link in standin_objects(standin, "calls")[0]["associations"]["contacts"]}


# Owners


def test_owner_lookup_lists_once(client: HubSpotClient, standin: StandinServer) -> None:
    # 105 owners fill two pages of 100, and the owner looked up is on the second.
    owners = [
        {"email": f"agent{index}@example.se", "firstName": "Agent", "lastName": str(index)} for index in range(104)
    ]
    owners.append({"email": "Anna.Agent@Example.se", "firstName": "Anna", "lastName": "Agent"})
    owner_ids = seed_standin(standin, {"owners": owners})["owners"]

    assert client.find_owner_id_by_email("  ANNA.agent@example.se ") == owner_ids[-1]
    assert client.find_owner_id_by_email("agent3@example.se") == owner_ids[3]
    assert client.find_owner_id_by_email("nobody@example.se") is None
    assert client.request_count == 2
    assert request_counts(standin)["by_route"] == {OWNERS_ROUTE: 2}


# Pauses: the daily limit and data-centre migration


def test_daily_429_pauses_until_midnight(client: HubSpotClient, standin: StandinServer) -> None:
    queue_fault(standin, status=429, count=1, path=SEARCH_PATH, policy_name="DAILY")
    reset_before = client.next_daily_reset()

    with pytest.raises(HubSpotPausedError) as raised:
        client.search("contacts", {"filterGroups": [], "limit": 10})

    assert raised.value.resume_at in (reset_before, client.next_daily_reset())
    assert raised.value.status == 429
    assert client.request_count == 1


def test_paused_client_sends_nothing(client: HubSpotClient, standin: StandinServer) -> None:
    queue_fault(standin, status=429, count=1, path=SEARCH_PATH, policy_name="DAILY")
    with pytest.raises(HubSpotPausedError):
        client.search("contacts", {"filterGroups": [], "limit": 10})

    with pytest.raises(HubSpotPausedError) as raised:
        client.batch_read("contacts", ["1001"], ["firstname"])

    assert abs(raised.value.resume_at - client.next_daily_reset()) < timedelta(seconds=2)
    assert "daily" in str(raised.value)
    assert request_counts(standin)["total"] == 1


def test_daily_remaining_zero_pauses(make_client: Any) -> None:
    # The first request uses the last of a daily limit of 1, and its X-HubSpot-RateLimit-Daily-Remaining is 0.
    with StandinServer(tokens=[STANDIN_TOKEN], daily_limit=1) as server:
        client = make_client(server.url)
        assert client.find_owner_id_by_email("anna@example.se") is None

        with pytest.raises(HubSpotPausedError) as raised:
            client.batch_read("contacts", ["1001"], ["firstname"])

        assert abs(raised.value.resume_at - client.next_daily_reset()) < timedelta(seconds=2)
        assert request_counts(server)["total"] == 1


@pytest.mark.parametrize(
    ("retry_after", "expected_seconds"),
    [(600, 600), (None, 3600)],
    ids=["retry-after-600", "no-retry-after"],
)
def test_migration_477_pauses(
    client: HubSpotClient, standin: StandinServer, retry_after: int | None, expected_seconds: int
) -> None:
    fault: dict[str, Any] = {"status": 477, "count": 1, "path": SEARCH_PATH}
    if retry_after is not None:
        fault["retry_after_seconds"] = retry_after
    queue_fault(standin, **fault)
    before = datetime.now(UTC)

    with pytest.raises(HubSpotPausedError) as raised:
        client.search("contacts", {"filterGroups": [], "limit": 10})

    after = datetime.now(UTC)
    expected = timedelta(seconds=expected_seconds)
    assert before + expected <= raised.value.resume_at <= after + expected
    assert client.request_count == 1
    with pytest.raises(HubSpotPausedError):
        client.search("contacts", {"filterGroups": [], "limit": 10})
    assert request_counts(standin)["total"] == 1


@pytest.mark.parametrize(
    ("time_zone", "now", "expected"),
    [
        pytest.param(
            "Europe/Stockholm",
            datetime(2026, 12, 4, 22, 30, tzinfo=UTC),
            datetime(2026, 12, 4, 23, 0, tzinfo=UTC),
            id="stockholm-winter",
        ),
        pytest.param(
            "Europe/Stockholm",
            datetime(2026, 12, 4, 23, 0, tzinfo=UTC),
            datetime(2026, 12, 5, 23, 0, tzinfo=UTC),
            id="stockholm-at-local-midnight",
        ),
        pytest.param(
            "Europe/Stockholm",
            datetime(2026, 6, 30, 12, 0, tzinfo=UTC),
            datetime(2026, 6, 30, 22, 0, tzinfo=UTC),
            id="stockholm-summer",
        ),
        pytest.param(
            "Europe/Stockholm",
            datetime(2026, 3, 28, 23, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 22, 0, tzinfo=UTC),
            id="stockholm-day-clocks-go-forward",
        ),
        pytest.param(
            "UTC",
            datetime(2026, 12, 4, 22, 30, tzinfo=UTC),
            datetime(2026, 12, 5, 0, 0, tzinfo=UTC),
            id="utc",
        ),
        pytest.param(
            "America/New_York",
            datetime(2026, 12, 4, 22, 30, tzinfo=UTC),
            datetime(2026, 12, 5, 5, 0, tzinfo=UTC),
            id="new-york",
        ),
    ],
)
def test_next_daily_reset_at_fixed_time(
    make_client: Any, standin: StandinServer, time_zone: str, now: datetime, expected: datetime
) -> None:
    client = make_client(standin.url, account_time_zone=time_zone)

    assert client.next_daily_reset(now) == expected


# Authentication and scopes


def test_invalid_token_raises_auth_error(make_client: Any, standin: StandinServer) -> None:
    token = "pat-eu1-0badc0de-not-a-valid-token"
    client = make_client(standin.url, access_token=token)

    with pytest.raises(HubSpotAuthError) as raised:
        client.find_owner_id_by_email("anna@example.se")

    assert raised.value.status == 401
    assert "HUBSPOT_ACCESS_TOKEN" in str(raised.value)
    assert "create a new private-app token" in str(raised.value)
    assert token not in str(raised.value)
    assert token not in repr(raised.value.args)
    assert client.request_count == 1


def test_missing_scope_raises_auth_error(make_client: Any) -> None:
    scopes = {STANDIN_TOKEN: ["crm.objects.contacts.read", "crm.objects.contacts.write"]}
    with StandinServer(tokens=[STANDIN_TOKEN], token_scopes=scopes) as server:
        client = make_client(server.url)

        with pytest.raises(HubSpotAuthError) as raised:
            client.find_owner_id_by_email("anna@example.se")

    assert raised.value.status == 403
    assert "crm.objects.owners.read" in str(raised.value)
    assert "add it to the private app" in str(raised.value)
    assert STANDIN_TOKEN not in str(raised.value)
    assert client.request_count == 1


# Rate-limit headers and request counts


def test_rate_limit_header_lowers_limiter(make_client: Any) -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(100, 10, clock=clock, sleep=clock.sleep)
    with StandinServer(tokens=[STANDIN_TOKEN], rate_limit_per_interval=7) as server:
        client = make_client(server.url, limiter=limiter)
        client.batch_read("contacts", ["1001"], ["firstname"])

    # The request above took one of the 7 places in the window.
    waits = [limiter.acquire("general") for _ in range(7)]

    assert waits[:6] == [0.0] * 6
    assert waits[6] == pytest.approx(GENERAL_WINDOW_SECONDS * WINDOW_MARGIN)


def test_rate_limit_header_never_raises_limiter(make_client: Any, standin: StandinServer) -> None:
    # The session's stand-in allows 1,000 requests per 10 s, above the limiter's 5.
    clock = FakeClock()
    limiter = LocalRateLimiter(5, 10, clock=clock, sleep=clock.sleep)
    client = make_client(standin.url, limiter=limiter)
    client.batch_read("contacts", ["1001"], ["firstname"])

    waits = [limiter.acquire("general") for _ in range(5)]

    assert waits[:4] == [0.0] * 4
    assert waits[4] == pytest.approx(GENERAL_WINDOW_SECONDS * WINDOW_MARGIN)


def test_request_counts_by_kind(client: HubSpotClient, standin: StandinServer) -> None:
    client.search("contacts", {"filterGroups": [], "limit": 10})
    client.search("calls", {"filterGroups": [], "limit": 10})
    client.batch_read("contacts", ["1001"], ["firstname"])
    client.find_owner_id_by_email("anna@example.se")

    assert client.request_count == 4
    assert client.requests_by_kind == Counter({"search": 2, "general": 2})
    assert request_counts(standin)["total"] == 4


# The resource with limits shared through PostgreSQL


def test_resource_shares_limits_in_database(
    standin: StandinServer, database_url: str, db_schema: str, db: psycopg.Connection[Any]
) -> None:
    resource = HubSpotResource(
        access_token=STANDIN_TOKEN,
        base_url=standin.url,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
        portal="portal-test",
        rate_limit_database_url=database_url,
        rate_limit_db_schema=db_schema,
    )
    queue_fault(standin, status=429, count=1, path=SEARCH_PATH, policy_name="SECONDLY")

    with resource.open_client() as client:
        client.search("contacts", {"filterGroups": [], "limit": 10})
        client.batch_read("contacts", ["1001"], ["firstname"])

    rows = db.execute("SELECT * FROM callsync_rate_limit_windows ORDER BY bucket").fetchall()
    assert [row["bucket"].split(":")[:2] for row in rows] == [["portal-test", "general"], ["portal-test", "search"]]
    assert [len(row["slots"]) for row in rows] == [1, 2]
    # The 429 paused both buckets of this limiter, so other runs on the account hold back too.
    assert all(row["pause_reason"] == "HubSpot answered 429 SECONDLY" for row in rows)
    assert all(row["paused_until"] is not None for row in rows)
