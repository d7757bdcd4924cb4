"""HTTP tests of the HubSpot stand-in: httpx against a StandinServer running on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from callsync_dagster.hubspot_standin import StandinError, StandinServer, StandinState
from callsync_dagster.hubspot_standin.server import main
from callsync_dagster.hubspot_standin.state import searchable_phone_number

TOKEN = "standin-test-token"
CALL_TIMESTAMP = "2025-03-01T09:30:00Z"
RATE_LIMIT_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)


# ---------------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server() -> Iterator[StandinServer]:
    # No test here reaches these limits. The rate-limit tests start their own servers.
    state = StandinState([TOKEN], rate_limit_per_interval=10_000, search_per_second=1_000)
    with StandinServer(state) as server:
        yield server


@pytest.fixture
def server(shared_server: StandinServer) -> StandinServer:
    shared_server.state.reset()
    return shared_server


@pytest.fixture
def client(server: StandinServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as http:
        yield http


@pytest.fixture
def admin(server: StandinServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        yield http


def create(client: httpx.Client, object_type: str, properties: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = client.post(f"/crm/v3/objects/{object_type}", json={"properties": properties, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def association(to_id: str, type_id: int) -> dict[str, Any]:
    return {"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


def search_body(*groups: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {"filterGroups": [{"filters": filters} for filters in groups], **options}


def search_ids(client: httpx.Client, object_type: str, body: dict[str, Any]) -> set[str]:
    response = client.post(f"/crm/v3/objects/{object_type}/search", json=body)
    assert response.status_code == 200, response.text
    return {result["id"] for result in response.json()["results"]}


def assert_error_body(response: httpx.Response, status: int, category: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body.get("category") == category
    assert str(uuid.UUID(body["correlationId"])) == body["correlationId"]
    assert response.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]
    return body


# ---------------------------------------------------------------------------------------------------------------
# Authentication and error bodies
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_auth_rejects_request(admin: httpx.Client, headers: dict[str, str]) -> None:
    response = admin.get("/crm/v3/objects/contacts", headers=headers)

    body = assert_error_body(response, 401, "INVALID_AUTHENTICATION")
    assert body["message"].startswith("Authentication credentials not found")
    assert "X-HubSpot-RateLimit-Max" not in response.headers


def test_auth_accepts_second_token() -> None:
    state = StandinState(["first-token", "second-token"])
    with StandinServer(state) as server:
        response = httpx.get(f"{server.url}/crm/v3/objects/contacts", headers={"Authorization": "Bearer second-token"})

    assert response.status_code == 200
    assert response.json() == {"results": []}


def test_every_response_has_correlation_id(client: httpx.Client, admin: httpx.Client) -> None:
    responses = [
        client.get("/crm/v3/objects/contacts"),
        client.get("/crm/v3/objects/contacts/999999"),
        admin.get("/_standin/requests"),
        admin.get("/no/such/route"),
    ]

    correlation_ids = [response.headers.get("X-HubSpot-Correlation-Id") for response in responses]
    assert all(correlation_ids)
    assert len(set(correlation_ids)) == len(responses)


def test_unknown_route_returns_json_error(client: httpx.Client) -> None:
    response = client.get("/crm/v3/nothing/here/at/all/really")

    assert_error_body(response, 404, "OBJECT_NOT_FOUND")


def test_unknown_object_type_400(client: httpx.Client) -> None:
    response = client.post("/crm/v3/objects/widgets", json={"properties": {}})

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert body["message"] == "Unable to infer object type from: widgets"


def test_invalid_json_400(client: httpx.Client) -> None:
    response = client.post(
        "/crm/v3/objects/contacts", content=b'{"properties": ', headers={"Content-Type": "application/json"}
    )

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert body["message"].startswith("Invalid input JSON on line 1")


# ---------------------------------------------------------------------------------------------------------------
# Scopes
# ---------------------------------------------------------------------------------------------------------------

# The private-app scopes that README.md lists for callsync.
README_SCOPES = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.deals.read",
    "crm.objects.owners.read",
)
SCOPED_TOKEN = "scoped-test-token"


@pytest.fixture
def scoped_server() -> Iterator[StandinServer]:
    """Serve a stand-in whose SCOPED_TOKEN has the README's scopes, next to TOKEN with every scope."""
    state = StandinState([TOKEN, SCOPED_TOKEN], token_scopes={SCOPED_TOKEN: README_SCOPES})
    with StandinServer(state) as server:
        yield server


def _required_scopes(response: httpx.Response) -> list[list[str]]:
    body = assert_error_body(response, 403, "MISSING_SCOPES")
    return [error["context"]["requiredGranularScopes"] for error in body["errors"]]


def test_scopes_readme_set_allows_callsync_routes(scoped_server: StandinServer) -> None:
    ids = scoped_server.state.seed(
        {
            "owners": [{"email": "ada@example.com"}],
            "companies": [{"properties": {"name": "Acme"}}],
            "deals": [{"properties": {"dealname": "Offer"}}],
        }
    )
    headers = {"Authorization": f"Bearer {SCOPED_TOKEN}"}
    with httpx.Client(base_url=scoped_server.url, headers=headers, timeout=10.0) as scoped:
        contacts = scoped.post(
            "/crm/v3/objects/contacts/batch/create",
            json={
                "inputs": [
                    {
                        "properties": {"firstname": "Anna"},
                        "associations": [association(ids["companies"][0], 1)],
                        "objectWriteTraceId": "trace-1",
                    }
                ]
            },
        )
        contact_id = contacts.json()["results"][0]["id"]
        responses = {
            "contacts-search": scoped.post("/crm/v3/objects/contacts/search", json={}),
            "contacts-batch-read": scoped.post(
                "/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": contact_id}]}
            ),
            "primary-company": scoped.post(
                "/crm/v4/associations/contacts/companies/batch/read", json={"inputs": [{"id": contact_id}]}
            ),
            "calls-batch-create": scoped.post(
                "/crm/v3/objects/calls/batch/create",
                json={
                    "inputs": [
                        {
                            "properties": {"hs_timestamp": CALL_TIMESTAMP},
                            "associations": [association(contact_id, 194), association(ids["companies"][0], 182)],
                            "objectWriteTraceId": "trace-call",
                        }
                    ]
                },
            ),
            "calls-search": scoped.post("/crm/v3/objects/calls/search", json={}),
            "owners": scoped.get("/crm/v3/owners"),
        }
        call_id = responses["calls-batch-create"].json()["results"][0]["id"]
        responses["call-to-deal"] = scoped.put(
            f"/crm/v4/objects/calls/{call_id}/associations/default/deals/{ids['deals'][0]}"
        )

    assert contacts.status_code == 201
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses == {
        "contacts-search": 200,
        "contacts-batch-read": 200,
        "primary-company": 200,
        "calls-batch-create": 201,
        "calls-search": 200,
        "owners": 200,
        "call-to-deal": 200,
    }


def test_scopes_missing_write_403(scoped_server: StandinServer) -> None:
    headers = {"Authorization": f"Bearer {SCOPED_TOKEN}"}
    with httpx.Client(base_url=scoped_server.url, headers=headers, timeout=10.0) as scoped:
        deal = scoped.post("/crm/v3/objects/deals", json={"properties": {"dealname": "Offer"}})
        company = scoped.post("/crm/objects/2026-03/companies/batch/create", json={"inputs": []})
        deal_read = scoped.get("/crm/v3/objects/deals")

    assert _required_scopes(deal) == [["crm.objects.deals.write"]]
    assert "X-HubSpot-RateLimit-Remaining" not in deal.headers
    assert _required_scopes(company) == [["crm.objects.companies.write"]]
    assert deal_read.status_code == 200
    assert scoped_server.state.dump_objects("deals") == []


def test_scopes_contacts_only_token() -> None:
    contacts_only = ["crm.objects.contacts.read", "crm.objects.contacts.write"]
    state = StandinState([TOKEN, SCOPED_TOKEN], token_scopes={SCOPED_TOKEN: contacts_only})
    contact = state.create_object("contacts", {"properties": {"firstname": "Anna"}})
    headers = {"Authorization": f"Bearer {SCOPED_TOKEN}"}
    with (
        StandinServer(state) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as scoped,
    ):
        call = scoped.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})
        owners = scoped.get("/crm/v3/owners/")
        companies = scoped.post(
            "/crm/v4/associations/contacts/companies/batch/read", json={"inputs": [{"id": contact["id"]}]}
        )
        unknown_type = scoped.get("/crm/v3/objects/widgets/1")
        full_token = httpx.get(f"{server.url}/crm/v3/owners", headers={"Authorization": f"Bearer {TOKEN}"})

    assert call.status_code == 201
    assert _required_scopes(owners) == [["crm.objects.owners.read"]]
    assert _required_scopes(companies) == [["crm.objects.companies.read"]]
    assert_error_body(unknown_type, 400, "VALIDATION_ERROR")
    assert full_token.status_code == 200


def test_scopes_name_each_missing_scope() -> None:
    state = StandinState([TOKEN], token_scopes={TOKEN: []})

    error = state.check_scopes(TOKEN, ["crm.objects.contacts.read", "crm.objects.companies.read"])

    assert error is not None
    assert error.status == 403
    assert [entry["context"]["requiredGranularScopes"] for entry in error.errors or []] == [
        ["crm.objects.contacts.read"],
        ["crm.objects.companies.read"],
    ]


def test_scopes_for_unknown_token_rejected() -> None:
    with pytest.raises(ValueError, match="token_scopes names a token that is not in tokens"):
        StandinState([TOKEN], token_scopes={"other-token": README_SCOPES})


# ---------------------------------------------------------------------------------------------------------------
# Create, read, update, list
# ---------------------------------------------------------------------------------------------------------------


def test_create_contact_shape(client: httpx.Client) -> None:
    response = client.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "anna@example.com", "firstname": "Anna", "phone": "+46 70-123 45 67"}},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["id"].isdigit()
    assert body["archived"] is False
    assert body["createdAt"].endswith("Z")
    assert body["updatedAt"] == body["createdAt"]
    properties = body["properties"]
    assert properties["email"] == "anna@example.com"
    assert properties["hs_object_id"] == body["id"]
    assert properties["createdate"] == body["createdAt"]
    assert properties["lastmodifieddate"] == body["createdAt"]
    assert properties["hs_searchable_calculated_phone_number"] == "701234567"
    for header in RATE_LIMIT_HEADERS:
        assert header in response.headers


def test_create_ids_increase_across_types(client: httpx.Client) -> None:
    company = create(client, "companies", {"name": "Acme"})
    contact = create(client, "contacts", {"firstname": "Bo"})
    deal = create(client, "deals", {"dealname": "Big"})

    ids = [int(company["id"]), int(contact["id"]), int(deal["id"])]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_create_converts_numbers_to_strings(client: httpx.Client) -> None:
    deal = create(client, "deals", {"dealname": "Numbers", "amount": 1250.5})
    call = create(client, "calls", {"hs_timestamp": 1735725600000, "hs_call_duration": 61000})

    assert deal["properties"]["amount"] == "1250.5"
    assert call["properties"]["hs_call_duration"] == "61000"
    assert call["properties"]["hs_timestamp"] == "2025-01-01T10:00:00.000Z"


def test_contact_duplicate_email_409(client: httpx.Client) -> None:
    first = create(client, "contacts", {"email": "Anna@Example.com"})

    response = client.post("/crm/v3/objects/contacts", json={"properties": {"email": "anna@example.COM"}})

    body = assert_error_body(response, 409, "CONFLICT")
    assert body["message"] == f"Contact already exists. Existing ID: {first['id']}"


def test_contact_without_identity_400(client: httpx.Client) -> None:
    response = client.post("/crm/v3/objects/contacts", json={"properties": {"phone": "+46701234567"}})

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert body["errors"][0]["code"] == "MISSING_REQUIRED_PROPERTY"


def test_unknown_property_400(client: httpx.Client) -> None:
    response = client.post(
        "/crm/v3/objects/contacts", json={"properties": {"firstname": "Anna", "favourite_colour": "blue"}}
    )

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert body["message"].startswith("Property values were not valid: ")
    assert body["errors"] == [
        {
            "message": 'Property "favourite_colour" does not exist',
            "code": "PROPERTY_DOESNT_EXIST",
            "context": {"propertyName": ["favourite_colour"]},
        }
    ]
    assert client.get("/crm/v3/objects/contacts").json()["results"] == []


def test_read_only_property_400(client: httpx.Client) -> None:
    response = client.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"firstname": "Anna", "hs_searchable_calculated_phone_number": "701234567"}},
    )

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert body["errors"][0]["code"] == "READ_ONLY_VALUE"


def test_registered_property_accepted(server: StandinServer, client: httpx.Client) -> None:
    server.state.register_property("calls", "telavox_call_id")

    call = create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP, "telavox_call_id": "LID-1"})

    assert call["properties"]["telavox_call_id"] == "LID-1"


def test_registered_property_via_admin(admin: httpx.Client, client: httpx.Client) -> None:
    registered = admin.post(
        "/_standin/properties",
        json={"object_type": "contacts", "name": "tier", "value_type": "enumeration", "options": ["a", "b"]},
    )
    accepted = client.post("/crm/v3/objects/contacts", json={"properties": {"firstname": "X", "tier": "a"}})
    rejected = client.post("/crm/v3/objects/contacts", json={"properties": {"firstname": "Y", "tier": "c"}})

    assert registered.status_code == 201
    assert accepted.status_code == 201
    body = assert_error_body(rejected, 400, "VALIDATION_ERROR")
    assert body["errors"][0]["code"] == "INVALID_OPTION"


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"hs_call_title": "no timestamp"}, "MISSING_REQUIRED_PROPERTY"),
        ({"hs_timestamp": "yesterday"}, "INVALID_DATE"),
        ({"hs_timestamp": CALL_TIMESTAMP, "hs_call_recording_url": "http://rec.example.com/a.mp3"}, "INVALID_URL"),
        ({"hs_timestamp": CALL_TIMESTAMP, "hs_call_direction": "INCOMING"}, "INVALID_OPTION"),
        ({"hs_timestamp": CALL_TIMESTAMP, "hs_call_status": "DONE"}, "INVALID_OPTION"),
        ({"hs_timestamp": CALL_TIMESTAMP, "hs_call_source": "API"}, "INVALID_OPTION"),
        ({"hs_timestamp": CALL_TIMESTAMP, "hs_call_duration": "long"}, "INVALID_NUMBER"),
        ({"hs_timestamp": CALL_TIMESTAMP, "hs_call_body": "x" * 65_537}, "INVALID_STRING_LENGTH"),
        ({"hs_timestamp": CALL_TIMESTAMP, "hubspot_owner_id": "424242"}, "INVALID_OPTION"),
        ({"hs_timestamp": CALL_TIMESTAMP, "shoe_size": "42"}, "PROPERTY_DOESNT_EXIST"),
    ],
    ids=[
        "no-timestamp",
        "bad-timestamp",
        "http-recording",
        "bad-direction",
        "bad-status",
        "bad-source",
        "bad-duration",
        "body-too-long",
        "unknown-owner",
        "unknown-property",
    ],
)
def test_call_validation_400(client: httpx.Client, properties: dict[str, Any], code: str) -> None:
    response = client.post("/crm/v3/objects/calls", json={"properties": properties})

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert [error["code"] for error in body["errors"]] == [code]


def test_call_valid_properties_accepted(server: StandinServer, client: httpx.Client) -> None:
    owner_id = server.state.add_owner("agent@example.com", "Ada", "Agent")["id"]
    properties = {
        "hs_timestamp": CALL_TIMESTAMP,
        "hs_call_title": "Inbound call",
        "hs_call_body": "x" * 65_536,
        "hs_call_direction": "OUTBOUND",
        "hs_call_duration": "61000",
        "hs_call_status": "COMPLETED",
        "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
        "hs_call_from_number": "+46812345678",
        "hs_call_to_number": "+46701234567",
        "hs_call_recording_url": "https://rec.example.com/a.mp3",
        "hs_call_external_id": "LID-1",
        "hs_call_source": "INTEGRATIONS_PLATFORM",
        "hubspot_owner_id": owner_id,
    }

    call = create(client, "calls", properties)

    for name, value in properties.items():
        expected = "2025-03-01T09:30:00.000Z" if name == "hs_timestamp" else value
        assert call["properties"][name] == expected


def test_call_inline_associations(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})
    company = create(client, "companies", {"name": "Acme"})

    call = create(
        client,
        "calls",
        {"hs_timestamp": CALL_TIMESTAMP},
        associations=[association(contact["id"], 194), association(company["id"], 182)],
    )
    read_call = client.get(
        f"/crm/v3/objects/calls/{call['id']}", params={"associations": "contacts,companies,widgets"}
    ).json()
    read_contact = client.get(f"/crm/v3/objects/contacts/{contact['id']}", params={"associations": "calls"}).json()

    assert read_call["associations"] == {
        "contacts": {"results": [{"id": contact["id"], "type": "call_to_contact"}]},
        "companies": {"results": [{"id": company["id"], "type": "call_to_company"}]},
    }
    assert read_contact["associations"] == {"calls": {"results": [{"id": call["id"], "type": "contact_to_call"}]}}


@pytest.mark.parametrize(
    ("make_association", "message_part"),
    [
        (lambda contact_id: association("999999", 194), "contacts 999999"),
        (lambda contact_id: association(contact_id, 1), "Association type id 1"),
        (lambda contact_id: association(contact_id, 424242), "Association type id 424242"),
        (
            lambda contact_id: {
                "to": {"id": contact_id},
                "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": 194}],
            },
            "Invalid association category",
        ),
    ],
    ids=["missing-target", "wrong-direction", "unknown-type", "user-defined"],
)
def test_call_bad_association_400(client: httpx.Client, make_association: Any, message_part: str) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})

    response = client.post(
        "/crm/v3/objects/calls",
        json={"properties": {"hs_timestamp": CALL_TIMESTAMP}, "associations": [make_association(contact["id"])]},
    )

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert message_part in body["message"]
    assert client.get("/crm/v3/objects/calls").json()["results"] == []


def test_get_requested_properties(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna", "lastname": "Berg", "phone": "0701234567"})

    default = client.get(f"/crm/v3/objects/contacts/{contact['id']}").json()
    requested = client.get(
        f"/crm/v3/objects/contacts/{contact['id']}", params={"properties": "phone,company,no_such_property"}
    ).json()

    assert set(default["properties"]) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    assert default["properties"]["email"] is None
    assert requested["properties"]["phone"] == "0701234567"
    assert requested["properties"]["company"] is None
    assert "no_such_property" not in requested["properties"]
    assert "firstname" not in requested["properties"]
    assert requested["properties"]["hs_object_id"] == contact["id"]


def test_get_by_email_id_property(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"email": "anna@example.com"})

    response = client.get("/crm/v3/objects/contacts/ANNA@example.com", params={"idProperty": "email"})

    assert response.status_code == 200
    assert response.json()["id"] == contact["id"]


def test_get_missing_object_404(client: httpx.Client) -> None:
    company = create(client, "companies", {"name": "Acme"})

    response = client.get(f"/crm/v3/objects/contacts/{company['id']}")

    body = assert_error_body(response, 404, "OBJECT_NOT_FOUND")
    assert body["context"] == {"id": [company["id"]]}


def test_patch_updates_properties(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna", "phone": "0701234567"})

    response = client.patch(
        f"/crm/v3/objects/contacts/{contact['id']}",
        json={"properties": {"lastname": "Berg", "phone": "", "mobilephone": "+46 73 999 88 77"}},
    )

    assert response.status_code == 200
    properties = response.json()["properties"]
    assert properties["firstname"] == "Anna"
    assert properties["lastname"] == "Berg"
    assert "phone" not in properties
    assert "hs_searchable_calculated_phone_number" not in properties
    assert properties["hs_searchable_calculated_mobile_number"] == "739998877"
    assert response.json()["updatedAt"] >= contact["updatedAt"]


@pytest.mark.parametrize(
    ("object_type", "properties", "status", "category"),
    [
        ("contacts", {"favourite_colour": "blue"}, 400, "VALIDATION_ERROR"),
        ("contacts", {"email": "taken@example.com"}, 409, "CONFLICT"),
        ("calls", {"hs_timestamp": ""}, 400, "VALIDATION_ERROR"),
    ],
    ids=["unknown-property", "email-taken", "clear-timestamp"],
)
def test_patch_rejects_invalid(
    client: httpx.Client, object_type: str, properties: dict[str, Any], status: int, category: str
) -> None:
    create(client, "contacts", {"email": "taken@example.com"})
    target_properties = {"firstname": "Anna"} if object_type == "contacts" else {"hs_timestamp": CALL_TIMESTAMP}
    target = create(client, object_type, target_properties)

    response = client.patch(f"/crm/v3/objects/{object_type}/{target['id']}", json={"properties": properties})

    assert_error_body(response, status, category)


def test_patch_missing_object_404(client: httpx.Client) -> None:
    response = client.patch("/crm/v3/objects/contacts/999999", json={"properties": {"firstname": "X"}})

    assert_error_body(response, 404, "OBJECT_NOT_FOUND")


def test_list_pages_with_after(client: httpx.Client) -> None:
    ids = [create(client, "companies", {"name": f"Company {index}"})["id"] for index in range(5)]

    first = client.get("/crm/v3/objects/companies", params={"limit": 2}).json()
    second = client.get("/crm/v3/objects/companies", params={"limit": 2, "after": first["paging"]["next"]["after"]})
    last = client.get(
        "/crm/v3/objects/companies", params={"limit": 2, "after": second.json()["paging"]["next"]["after"]}
    ).json()

    assert [result["id"] for result in first["results"]] == ids[:2]
    assert [result["id"] for result in second.json()["results"]] == ids[2:4]
    assert [result["id"] for result in last["results"]] == ids[4:]
    assert "paging" not in last


def test_date_versioned_path(client: httpx.Client) -> None:
    response = client.post("/crm/objects/2026-03/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    assert response.status_code == 201
    assert client.get(f"/crm/v3/objects/calls/{response.json()['id']}").status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# Batch create and read
# ---------------------------------------------------------------------------------------------------------------


def test_batch_create_201(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})
    inputs = [
        {
            "properties": {"hs_timestamp": CALL_TIMESTAMP, "hs_call_title": f"Call {index}"},
            "associations": [association(contact["id"], 194)],
        }
        for index in range(3)
    ]

    response = client.post("/crm/v3/objects/calls/batch/create", json={"inputs": inputs})

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert [result["properties"]["hs_call_title"] for result in body["results"]] == ["Call 0", "Call 1", "Call 2"]
    assert body["startedAt"] <= body["completedAt"]
    assert "errors" not in body
    linked = client.get(f"/crm/v4/objects/contacts/{contact['id']}/associations/calls").json()["results"]
    assert len(linked) == 3


def test_batch_create_over_100_400(client: httpx.Client) -> None:
    inputs = [{"properties": {"name": f"Company {index}"}} for index in range(101)]

    response = client.post("/crm/v3/objects/companies/batch/create", json={"inputs": inputs})

    assert_error_body(response, 400, "VALIDATION_ERROR")
    assert client.get("/crm/v3/objects/companies").json()["results"] == []


def test_batch_create_traced_207(client: httpx.Client) -> None:
    existing = create(client, "contacts", {"email": "taken@example.com"})
    inputs = [
        {"properties": {"email": "new@example.com"}, "objectWriteTraceId": "trace-ok"},
        {"properties": {"email": "TAKEN@example.com"}, "objectWriteTraceId": "trace-duplicate"},
        {"properties": {"email": "other@example.com", "shoe_size": "42"}, "objectWriteTraceId": "trace-invalid"},
        {"properties": {"email": "new@example.com"}, "objectWriteTraceId": "trace-same-batch"},
    ]

    response = client.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})

    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 3
    assert [result["objectWriteTraceId"] for result in body["results"]] == ["trace-ok"]
    errors = {error["context"]["objectWriteTraceId"][0]: error for error in body["errors"]}
    assert errors["trace-duplicate"]["category"] == "CONFLICT"
    assert errors["trace-duplicate"]["message"] == f"Contact already exists. Existing ID: {existing['id']}"
    assert errors["trace-invalid"]["category"] == "VALIDATION_ERROR"
    assert errors["trace-same-batch"]["category"] == "CONFLICT"
    assert all(error["status"] == "error" for error in body["errors"])


def test_batch_create_untraced_fails_whole(client: httpx.Client) -> None:
    create(client, "contacts", {"email": "taken@example.com"})
    inputs = [{"properties": {"email": "new@example.com"}}, {"properties": {"email": "taken@example.com"}}]

    response = client.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})

    assert_error_body(response, 409, "CONFLICT")
    emails = [contact["properties"]["email"] for contact in client.get("/crm/v3/objects/contacts").json()["results"]]
    assert emails == ["taken@example.com"]


def test_batch_read_207_for_missing(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna", "phone": "0701234567"})

    response = client.post(
        "/crm/v3/objects/contacts/batch/read",
        json={"inputs": [{"id": contact["id"]}, {"id": "999999"}], "properties": ["phone"]},
    )

    assert response.status_code == 207
    body = response.json()
    assert [result["id"] for result in body["results"]] == [contact["id"]]
    assert body["results"][0]["properties"]["phone"] == "0701234567"
    assert body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"] == {"ids": ["999999"]}


def test_batch_read_all_found_200(client: httpx.Client) -> None:
    ids = [create(client, "companies", {"name": name})["id"] for name in ("A", "B")]

    response = client.post("/crm/v3/objects/companies/batch/read", json={"inputs": [{"id": i} for i in ids]})

    assert response.status_code == 200
    assert [result["id"] for result in response.json()["results"]] == ids
    assert "errors" not in response.json()


def test_batch_create_100_contacts(client: httpx.Client) -> None:
    inputs = [
        {"properties": {"firstname": f"Person {index}", "phone": f"070{index:07d}"}, "objectWriteTraceId": f"t{index}"}
        for index in range(100)
    ]

    response = client.post("/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})

    assert response.status_code == 201
    results = response.json()["results"]
    assert len(results) == 100
    assert {result["objectWriteTraceId"] for result in results} == {f"t{index}" for index in range(100)}
    assert results[5]["properties"]["hs_searchable_calculated_phone_number"] == "700000005"


def test_batch_create_101_calls_400(client: httpx.Client) -> None:
    inputs = [{"properties": {"hs_timestamp": CALL_TIMESTAMP}, "objectWriteTraceId": f"t{i}"} for i in range(101)]

    response = client.post("/crm/v3/objects/calls/batch/create", json={"inputs": inputs})

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert "at most 100" in body["message"]
    assert client.get("/crm/v3/objects/calls").json()["results"] == []


def test_batch_create_calls_traced_207(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})
    inputs = [
        {
            "properties": {"hs_timestamp": CALL_TIMESTAMP, "hs_call_external_id": "lid-ok"},
            "associations": [association(contact["id"], 194)],
            "objectWriteTraceId": "trace-ok",
        },
        {
            "properties": {"hs_timestamp": CALL_TIMESTAMP, "hs_call_external_id": "lid-bad"},
            "associations": [association("999999", 194)],
            "objectWriteTraceId": "trace-missing-contact",
        },
        {"properties": {"hs_call_direction": "SIDEWAYS"}, "objectWriteTraceId": "trace-invalid"},
    ]

    response = client.post("/crm/v3/objects/calls/batch/create", json={"inputs": inputs})

    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert body["numErrors"] == 2
    assert [result["objectWriteTraceId"] for result in body["results"]] == ["trace-ok"]
    assert body["results"][0]["properties"]["hs_call_external_id"] == "lid-ok"
    errors = {error["context"]["objectWriteTraceId"][0]: error for error in body["errors"]}
    assert set(errors) == {"trace-missing-contact", "trace-invalid"}
    assert errors["trace-missing-contact"]["category"] == "VALIDATION_ERROR"
    assert "contacts 999999" in errors["trace-missing-contact"]["message"]
    assert errors["trace-missing-contact"]["context"] == {"objectWriteTraceId": ["trace-missing-contact"]}
    assert {error["code"] for error in errors["trace-invalid"]["errors"]} == {
        "INVALID_OPTION",
        "MISSING_REQUIRED_PROPERTY",
    }
    stored = client.get("/crm/v3/objects/calls", params={"properties": "hs_call_external_id"}).json()["results"]
    assert [call["properties"]["hs_call_external_id"] for call in stored] == ["lid-ok"]


def test_batch_read_calls(client: httpx.Client) -> None:
    calls = [
        create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP, "hs_call_external_id": f"lid-{index}"})
        for index in range(2)
    ]

    response = client.post(
        "/crm/v3/objects/calls/batch/read",
        json={"inputs": [{"id": call["id"]} for call in calls], "properties": ["hs_call_external_id"]},
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["properties"]["hs_call_external_id"] for result in results] == ["lid-0", "lid-1"]


def test_v4_batch_read_1000_calls(server: StandinServer, client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})
    call_ids = [
        server.state.create_object(
            "calls",
            {"properties": {"hs_timestamp": CALL_TIMESTAMP}, "associations": [association(contact["id"], 194)]},
        )["id"]
        for _ in range(1000)
    ]

    response = client.post(
        "/crm/v4/associations/calls/contacts/batch/read", json={"inputs": [{"id": call_id} for call_id in call_ids]}
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["from"]["id"] for result in results] == call_ids
    assert {result["to"][0]["toObjectId"] for result in results} == {int(contact["id"])}
    assert results[0]["to"][0]["associationTypes"] == [{"category": "HUBSPOT_DEFINED", "typeId": 194, "label": None}]


# ---------------------------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stored_phone",
    ["+46 70-123 45 67", "070-123 45 67", "0046 70 123 45 67", "+46701234567", "(070) 123 4567", "70 123 45 67"],
)
@pytest.mark.parametrize(
    "property_pair",
    [
        ("phone", "hs_searchable_calculated_phone_number"),
        ("mobilephone", "hs_searchable_calculated_mobile_number"),
    ],
    ids=["phone", "mobile"],
)
def test_search_phone_formats(client: httpx.Client, stored_phone: str, property_pair: tuple[str, str]) -> None:
    source, calculated = property_pair
    contact = create(client, "contacts", {"firstname": "Anna", source: stored_phone})
    create(client, "contacts", {"firstname": "Other", source: "+46 70 765 43 21"})

    found = search_ids(
        client, "contacts", search_body([{"propertyName": calculated, "operator": "EQ", "value": "701234567"}])
    )

    assert found == {contact["id"]}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+46 70-123 45 67", "701234567"),
        ("08-123 456 78", "812345678"),
        ("+1 (415) 555-0100", "4155550100"),
        ("+39 06 1234 5678", "0612345678"),
        ("ext. 0042", "42"),
        ("", None),
        (None, None),
    ],
    ids=["se-mobile", "se-landline", "us", "it-leading-zero", "unparseable", "empty", "none"],
)
def test_searchable_phone_number(raw: str | None, expected: str | None) -> None:
    assert searchable_phone_number(raw, "SE") == expected


def test_search_phone_region_config() -> None:
    state = StandinState([TOKEN], default_phone_region="US")

    created = state.create_object("contacts", {"properties": {"firstname": "Sam", "phone": "(415) 555-0100"}})

    assert created["properties"]["hs_searchable_calculated_phone_number"] == "4155550100"


@pytest.fixture
def deals(client: httpx.Client) -> dict[str, str]:
    """Create three deals to run operators against and return their ids by name."""
    specs = {
        "alpha": {"dealname": "Alpha", "amount": "100", "closedate": "2025-01-10T00:00:00Z"},
        "beta": {"dealname": "Beta deal", "amount": "250", "closedate": "2025-06-01T00:00:00Z"},
        "gamma": {"dealname": "Gamma big order", "pipeline": "default"},
    }
    return {name: create(client, "deals", properties)["id"] for name, properties in specs.items()}


@pytest.mark.parametrize(
    ("search_filter", "expected"),
    [
        ({"propertyName": "amount", "operator": "EQ", "value": "250"}, {"beta"}),
        ({"propertyName": "amount", "operator": "EQ", "value": "250.0"}, {"beta"}),
        ({"propertyName": "dealname", "operator": "EQ", "value": "ALPHA"}, {"alpha"}),
        ({"propertyName": "amount", "operator": "NEQ", "value": "250"}, {"alpha", "gamma"}),
        ({"propertyName": "amount", "operator": "LT", "value": "250"}, {"alpha"}),
        ({"propertyName": "amount", "operator": "LTE", "value": "250"}, {"alpha", "beta"}),
        ({"propertyName": "amount", "operator": "GT", "value": "100"}, {"beta"}),
        ({"propertyName": "amount", "operator": "GTE", "value": "100"}, {"alpha", "beta"}),
        ({"propertyName": "amount", "operator": "BETWEEN", "value": "50", "highValue": "100"}, {"alpha"}),
        ({"propertyName": "dealname", "operator": "IN", "values": ["alpha", "beta deal"]}, {"alpha", "beta"}),
        ({"propertyName": "dealname", "operator": "IN", "values": ["Alpha"]}, set()),
        ({"propertyName": "dealname", "operator": "NOT_IN", "values": ["alpha"]}, {"beta", "gamma"}),
        ({"propertyName": "amount", "operator": "HAS_PROPERTY"}, {"alpha", "beta"}),
        ({"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"}, {"gamma"}),
        ({"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "big"}, {"gamma"}),
        ({"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "gam*"}, {"gamma"}),
        ({"propertyName": "dealname", "operator": "NOT_CONTAINS_TOKEN", "value": "deal"}, {"alpha", "gamma"}),
        ({"propertyName": "closedate", "operator": "GT", "value": "1740000000000"}, {"beta"}),
        ({"propertyName": "closedate", "operator": "LT", "value": "2025-02-01"}, {"alpha"}),
    ],
    ids=[
        "eq-number",
        "eq-number-decimal",
        "eq-text-case",
        "neq",
        "lt",
        "lte",
        "gt",
        "gte",
        "between",
        "in-lower",
        "in-upper-no-match",
        "not-in",
        "has-property",
        "not-has-property",
        "contains-token",
        "contains-wildcard",
        "not-contains-token",
        "gt-epoch-ms",
        "lt-iso-date",
    ],
)
def test_search_operators(
    client: httpx.Client, deals: dict[str, str], search_filter: dict[str, Any], expected: set[str]
) -> None:
    found = search_ids(client, "deals", search_body([search_filter]))

    assert found == {deals[name] for name in expected}


def test_search_groups_or_filters_and(client: httpx.Client, deals: dict[str, str]) -> None:
    body = search_body(
        [
            {"propertyName": "amount", "operator": "GTE", "value": "100"},
            {"propertyName": "amount", "operator": "LT", "value": "200"},
        ],
        [{"propertyName": "pipeline", "operator": "EQ", "value": "default"}],
    )

    assert search_ids(client, "deals", body) == {deals["alpha"], deals["gamma"]}


def test_search_by_association(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})
    linked = create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP}, associations=[association(contact["id"], 194)])
    create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP})

    body = search_body([{"propertyName": "associations.contact", "operator": "EQ", "value": contact["id"]}])

    assert search_ids(client, "calls", body) == {linked["id"]}


def test_search_response_shape(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna", "email": "anna@example.com"})

    response = client.post(
        "/crm/v3/objects/contacts/search",
        json=search_body(
            [{"propertyName": "email", "operator": "EQ", "value": "anna@example.com"}],
            properties=["firstname", "phone"],
        ),
    )

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    assert "paging" not in body
    result = body["results"][0]
    assert set(result) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert result["id"] == contact["id"]
    assert result["properties"]["firstname"] == "Anna"
    assert result["properties"]["phone"] is None
    for header in RATE_LIMIT_HEADERS:
        assert header not in response.headers


def test_search_sorts_and_pages(client: httpx.Client) -> None:
    names = ["Delta", "alpha", "Charlie", "bravo", "Echo"]
    for name in names:
        create(client, "companies", {"name": name})
    body = {"sorts": [{"propertyName": "name", "direction": "DESCENDING"}], "limit": 2, "properties": ["name"]}

    pages = []
    after: str | None = "0"
    while after is not None:
        response = client.post("/crm/v3/objects/companies/search", json={**body, "after": after}).json()
        assert response["total"] == 5
        pages.append([result["properties"]["name"] for result in response["results"]])
        after = response.get("paging", {}).get("next", {}).get("after")

    assert pages == [["Echo", "Delta"], ["Charlie", "bravo"], ["alpha"]]


def test_search_free_text_query(client: httpx.Client) -> None:
    anna = create(client, "contacts", {"firstname": "Anna", "email": "anna@acme.example"})
    create(client, "contacts", {"firstname": "Bo", "email": "bo@other.example"})

    assert search_ids(client, "contacts", {"query": "ACME"}) == {anna["id"]}


def _filters(count: int) -> list[dict[str, Any]]:
    return [{"propertyName": "firstname", "operator": "HAS_PROPERTY"} for _ in range(count)]


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        (search_body(*[_filters(1) for _ in range(6)]), "Too many filter groups"),
        (search_body(_filters(7)), "Too many filters in filterGroups[0]"),
        (search_body(_filters(5), _filters(5), _filters(5), _filters(4)), "Too many filters: 19"),
        ({"limit": 201}, "limit"),
        ({"after": "10000"}, "Paging past 10000"),
        ({"query": "x" * 3000}, "characters long"),
        ({"sorts": ["firstname", "lastname"]}, "Too many sorts"),
        (search_body([{"propertyName": "shoe_size", "operator": "EQ", "value": "42"}]), "does not exist"),
        (search_body([{"propertyName": "firstname", "operator": "LIKE", "value": "A"}]), "operator"),
        (search_body([{"propertyName": "firstname", "operator": "EQ"}]), "needs a value"),
        (search_body([{"propertyName": "firstname", "operator": "IN", "values": []}]), "non-empty values"),
        (search_body([{"propertyName": "createdate", "operator": "GT", "value": "soon"}]), "Invalid filter value"),
    ],
    ids=[
        "six-groups",
        "seven-filters-in-group",
        "nineteen-filters",
        "limit-201",
        "after-10000",
        "body-too-long",
        "two-sorts",
        "unknown-property",
        "unknown-operator",
        "missing-value",
        "empty-values",
        "bad-date",
    ],
)
def test_search_rejects_invalid_400(client: httpx.Client, body: dict[str, Any], message_part: str) -> None:
    response = client.post("/crm/v3/objects/contacts/search", json=body)

    result = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert message_part in result["message"]


def test_search_at_limits_accepted(client: httpx.Client) -> None:
    body = search_body(_filters(6), _filters(6), _filters(6), limit=200)

    response = client.post("/crm/v3/objects/contacts/search", json=body)

    assert response.status_code == 200, response.text
    assert len(json.dumps(body)) <= 3000


def test_search_stops_at_10000(server: StandinServer, client: httpx.Client) -> None:
    for index in range(10_005):
        server.state.create_object("companies", {"properties": {"name": f"Company {index}"}})

    near_end = client.post("/crm/v3/objects/companies/search", json={"limit": 200, "after": "9900"}).json()
    before_end = client.post("/crm/v3/objects/companies/search", json={"limit": 100, "after": "9800"}).json()

    assert near_end["total"] == 10_005
    assert len(near_end["results"]) == 100
    assert "paging" not in near_end
    assert before_end["paging"] == {"next": {"after": "9900"}}


def test_search_in_calculated_phone_numbers(client: httpx.Client) -> None:
    by_phone = create(client, "contacts", {"firstname": "Anna", "phone": "+46 70-123 45 67"})
    by_mobile = create(client, "contacts", {"firstname": "Bo", "mobilephone": "073-999 88 77"})
    create(client, "contacts", {"firstname": "Other", "phone": "+46 70 765 43 21"})
    numbers = ["701234567", "739998877", "812345678"]
    body = search_body(
        [{"propertyName": "hs_searchable_calculated_phone_number", "operator": "IN", "values": numbers}],
        [{"propertyName": "hs_searchable_calculated_mobile_number", "operator": "IN", "values": numbers}],
        properties=["phone", "mobilephone"],
        limit=200,
    )

    assert search_ids(client, "contacts", body) == {by_phone["id"], by_mobile["id"]}


def test_search_in_call_external_id(client: httpx.Client) -> None:
    ids = {
        external_id: create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP, "hs_call_external_id": external_id})["id"]
        for external_id in ("lid-1", "LID-2", "lid-3")
    }

    def found(values: list[str]) -> set[str]:
        body = search_body([{"propertyName": "hs_call_external_id", "operator": "IN", "values": values}])
        return search_ids(client, "calls", body)

    assert found(["lid-1", "lid-2", "lid-9"]) == {ids["lid-1"], ids["LID-2"]}
    # HubSpot's IN matches string properties only with lower-case values.
    assert found(["LID-2"]) == set()
    assert found(["LID-1"]) == set()


def test_search_body_3000_chars(client: httpx.Client) -> None:
    envelope = json.dumps({"query": ""}, separators=(",", ":"))
    at_limit = json.dumps({"query": "x" * (3000 - len(envelope))}, separators=(",", ":"))
    over_limit = json.dumps({"query": "x" * (3001 - len(envelope))}, separators=(",", ":"))
    headers = {"Content-Type": "application/json"}

    accepted = client.post("/crm/v3/objects/contacts/search", content=at_limit, headers=headers)
    rejected = client.post("/crm/v3/objects/contacts/search", content=over_limit, headers=headers)

    assert len(at_limit) == 3000
    assert accepted.status_code == 200, accepted.text
    body = assert_error_body(rejected, 400, "VALIDATION_ERROR")
    assert "3001 characters long" in body["message"]


def test_search_limit_200_pages(server: StandinServer, client: httpx.Client) -> None:
    for index in range(250):
        server.state.create_object(
            "calls", {"properties": {"hs_timestamp": CALL_TIMESTAMP, "hs_call_title": str(index)}}
        )
    body = {"limit": 200, "properties": ["hs_call_title"]}

    first = client.post("/crm/v3/objects/calls/search", json=body).json()
    second = client.post("/crm/v3/objects/calls/search", json={**body, "after": first["paging"]["next"]["after"]})

    assert len(first["results"]) == 200
    assert first["paging"] == {"next": {"after": "200"}}
    assert second.status_code == 200
    assert len(second.json()["results"]) == 50
    assert "paging" not in second.json()
    titles = [result["properties"]["hs_call_title"] for result in first["results"] + second.json()["results"]]
    assert titles == [str(index) for index in range(250)]


def _phone_search(client: httpx.Client, *numbers: str) -> set[str]:
    filters = [{"propertyName": "hs_searchable_calculated_phone_number", "operator": "IN", "values": list(numbers)}]
    return search_ids(client, "contacts", search_body(filters))


def test_search_lag_hides_new_objects(server: StandinServer, client: httpx.Client) -> None:
    server.state.search_lag_seconds = 60
    try:
        single = create(client, "contacts", {"firstname": "Anna", "phone": "0701234567"})
        batch = client.post(
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": [{"properties": {"firstname": "Bo", "phone": "0739998877"}, "objectWriteTraceId": "t1"}]},
        )
        batch_id = batch.json()["results"][0]["id"]
        during_lag = _phone_search(client, "701234567", "739998877")
        read_single = client.get(f"/crm/v3/objects/contacts/{single['id']}")
        read_batch = client.post("/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": batch_id}]})
    finally:
        server.state.search_lag_seconds = 0
    after_lag = _phone_search(client, "701234567", "739998877")

    assert batch.status_code == 201
    assert during_lag == set()
    assert read_single.status_code == 200
    assert read_batch.status_code == 200
    assert after_lag == {single["id"], batch_id}


def test_search_lag_expires(server: StandinServer, client: httpx.Client) -> None:
    server.state.search_lag_seconds = 0.5
    try:
        contact = create(client, "contacts", {"firstname": "Anna", "phone": "0701234567"})
        at_once = _phone_search(client, "701234567")
        time.sleep(0.6)
        later = _phone_search(client, "701234567")
    finally:
        server.state.search_lag_seconds = 0

    assert at_once == set()
    assert later == {contact["id"]}


def test_search_lag_spares_seeded(server: StandinServer, client: httpx.Client) -> None:
    server.state.search_lag_seconds = 60
    try:
        seeded = server.state.seed({"contacts": [{"properties": {"firstname": "Anna", "phone": "0701234567"}}]})
        found = _phone_search(client, "701234567")
    finally:
        server.state.search_lag_seconds = 0

    assert found == set(seeded["contacts"])


# ---------------------------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------------------------


def _get_contacts(server: StandinServer, token: str = TOKEN) -> httpx.Response:
    return httpx.get(f"{server.url}/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {token}"})


def test_rate_limit_ten_secondly_429() -> None:
    state = StandinState([TOKEN, "other-token"], rate_limit_per_interval=3)
    with StandinServer(state) as server:
        allowed = [_get_contacts(server) for _ in range(3)]
        rejected = _get_contacts(server)
        other_token = _get_contacts(server, "other-token")

    assert [response.status_code for response in allowed] == [200, 200, 200]
    assert [response.headers["X-HubSpot-RateLimit-Remaining"] for response in allowed] == ["2", "1", "0"]
    assert allowed[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert allowed[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    body = assert_error_body(rejected, 429, None)
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert rejected.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert other_token.status_code == 200
    assert state.request_counts()["rate_limited"] == 1


def test_rate_limit_window_rolls() -> None:
    now = [1000.0]
    state = StandinState([TOKEN], rate_limit_per_interval=2, clock=lambda: now[0])

    decisions = [state.check_rate_limit(TOKEN, search=False) for _ in range(3)]
    now[0] += 10.0
    after_window = state.check_rate_limit(TOKEN, search=False)

    assert [decision.error is None for decision in decisions] == [True, True, False]
    assert after_window.error is None


def test_rate_limit_daily_429() -> None:
    state = StandinState([TOKEN], daily_limit=2)
    with StandinServer(state) as server:
        allowed = [_get_contacts(server) for _ in range(2)]
        rejected = _get_contacts(server)

    assert [response.headers["X-HubSpot-RateLimit-Daily-Remaining"] for response in allowed] == ["1", "0"]
    assert allowed[0].headers["X-HubSpot-RateLimit-Daily"] == "2"
    body = assert_error_body(rejected, 429, None)
    assert body["policyName"] == "DAILY"


def test_search_rate_limit_429() -> None:
    state = StandinState([TOKEN], search_per_second=2)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with StandinServer(state) as server, httpx.Client(base_url=server.url, headers=headers) as http:
        searches = [http.post("/crm/v3/objects/contacts/search", json={}) for _ in range(3)]
        general = http.get("/crm/v3/objects/contacts")

    assert [response.status_code for response in searches[:2]] == [200, 200]
    body = assert_error_body(searches[2], 429, None)
    assert body["policyName"] == "SECONDLY"
    assert "X-HubSpot-RateLimit-Max" not in searches[2].headers
    assert general.status_code == 200
    assert general.headers["X-HubSpot-RateLimit-Remaining"] == "99"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/crm/v3/owners", None, 200),
        ("GET", "/crm/v3/objects/contacts/999999", None, 404),
        ("POST", "/crm/v3/objects/contacts", {"properties": {"shoe_size": "42"}}, 400),
        ("POST", "/crm/v3/objects/contacts/batch/read", {"inputs": []}, 200),
        ("POST", "/crm/v3/objects/calls/batch/create", {"inputs": []}, 201),
        ("POST", "/crm/v4/associations/calls/contacts/batch/read", {"inputs": []}, 200),
        ("PATCH", "/crm/v3/objects/calls/999999", {"properties": {}}, 404),
    ],
    ids=["owners", "not-found", "invalid", "batch-read", "batch-create", "v4-batch-read", "patch"],
)
def test_rate_limit_headers_on_general_routes(
    client: httpx.Client, method: str, path: str, body: dict[str, Any] | None, status: int
) -> None:
    response = client.request(method, path, json=body)

    assert response.status_code == status, response.text
    for header in RATE_LIMIT_HEADERS:
        assert header in response.headers
    assert response.headers["X-HubSpot-RateLimit-Max"] == "10000"
    assert response.headers["X-HubSpot-RateLimit-Daily"] == "250000"


@pytest.mark.parametrize("object_type", ["contacts", "calls"])
def test_rate_limit_headers_absent_on_search(client: httpx.Client, object_type: str) -> None:
    found = client.post(f"/crm/v3/objects/{object_type}/search", json={})
    rejected = client.post(f"/crm/v3/objects/{object_type}/search", json={"limit": 201})

    assert found.status_code == 200
    assert rejected.status_code == 400
    for header in RATE_LIMIT_HEADERS:
        assert header not in found.headers
        assert header not in rejected.headers


def test_rate_limit_daily_counts_searches() -> None:
    state = StandinState([TOKEN], daily_limit=3)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with StandinServer(state) as server, httpx.Client(base_url=server.url, headers=headers) as http:
        searches = [http.post("/crm/v3/objects/contacts/search", json={}) for _ in range(2)]
        general = http.get("/crm/v3/objects/contacts")
        search_over_limit = http.post("/crm/v3/objects/contacts/search", json={})
        general_over_limit = http.get("/crm/v3/objects/contacts")

    assert [response.status_code for response in searches] == [200, 200]
    assert general.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert assert_error_body(search_over_limit, 429, None)["policyName"] == "DAILY"
    assert "X-HubSpot-RateLimit-Daily" not in search_over_limit.headers
    assert assert_error_body(general_over_limit, 429, None)["policyName"] == "DAILY"
    assert general_over_limit.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert general_over_limit.headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert state.request_counts()["rate_limited"] == 2


# ---------------------------------------------------------------------------------------------------------------
# Associations v4
# ---------------------------------------------------------------------------------------------------------------


def test_v4_primary_company_types(server: StandinServer, client: httpx.Client) -> None:
    ids = server.state.seed(
        {
            "companies": [{"properties": {"name": "Primary AB"}}, {"properties": {"name": "Other AB"}}],
            "contacts": [],
        }
    )
    primary_id, other_id = ids["companies"]
    contact = create(
        client,
        "contacts",
        {"firstname": "Anna"},
        associations=[association(primary_id, 1), association(other_id, 279)],
    )

    response = client.get(f"/crm/v4/objects/contacts/{contact['id']}/associations/companies")
    reverse = client.get(f"/crm/v4/objects/companies/{primary_id}/associations/contacts").json()

    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "toObjectId": int(primary_id),
            "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
                {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
            ],
        },
        {
            "toObjectId": int(other_id),
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}],
        },
    ]
    assert [entry["typeId"] for entry in reverse["results"][0]["associationTypes"]] == [2, 280]


def test_v4_new_primary_replaces_old(client: httpx.Client) -> None:
    first = create(client, "companies", {"name": "First"})
    second = create(client, "companies", {"name": "Second"})
    contact = create(client, "contacts", {"firstname": "Anna"}, associations=[association(first["id"], 1)])

    response = client.post(
        "/crm/v4/associations/contacts/companies/batch/create",
        json={
            "inputs": [
                {
                    "from": {"id": contact["id"]},
                    "to": {"id": second["id"]},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}],
                }
            ]
        },
    )
    linked = client.get(f"/crm/v4/objects/contacts/{contact['id']}/associations/companies").json()["results"]

    assert response.status_code == 201
    assert response.json()["results"] == [
        {
            "fromObjectTypeId": "0-1",
            "fromObjectId": int(contact["id"]),
            "toObjectTypeId": "0-2",
            "toObjectId": int(second["id"]),
            "labels": ["Primary"],
        }
    ]
    type_ids = {entry["toObjectId"]: [t["typeId"] for t in entry["associationTypes"]] for entry in linked}
    assert type_ids == {int(first["id"]): [279], int(second["id"]): [1, 279]}


def test_v4_put_default(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})
    call = create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP})

    response = client.put(f"/crm/v4/objects/calls/{call['id']}/associations/default/contacts/{contact['id']}")
    reverse = client.get(f"/crm/v4/objects/contacts/{contact['id']}/associations/calls").json()

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    specs = {(r["from"]["id"], r["associationSpec"]["associationTypeId"]) for r in body["results"]}
    assert specs == {(call["id"], 194), (contact["id"], 193)}
    assert reverse["results"] == [
        {
            "toObjectId": int(call["id"]),
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 193, "label": None}],
        }
    ]


def test_v4_put_default_missing_target(client: httpx.Client) -> None:
    call = create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP})

    response = client.put(f"/crm/v4/objects/calls/{call['id']}/associations/default/contacts/999999")

    assert_error_body(response, 400, "VALIDATION_ERROR")


def test_v4_batch_create_207(client: httpx.Client) -> None:
    contact = create(client, "contacts", {"firstname": "Anna"})
    call = create(client, "calls", {"hs_timestamp": CALL_TIMESTAMP})
    types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]

    response = client.post(
        "/crm/v4/associations/calls/contacts/batch/create",
        json={
            "inputs": [
                {"from": {"id": call["id"]}, "to": {"id": contact["id"]}, "types": types},
                {"from": {"id": call["id"]}, "to": {"id": "999999"}, "types": types},
            ]
        },
    )

    assert response.status_code == 207
    body = response.json()
    assert len(body["results"]) == 1
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"] == {"fromObjectId": [call["id"]], "toObjectId": ["999999"]}


def test_v4_batch_limits_400(client: httpx.Client) -> None:
    too_many_creates = [{"from": {"id": "1"}, "to": {"id": "2"}, "types": []}] * 2001
    too_many_reads = [{"id": "1"}] * 1001

    created = client.post("/crm/v4/associations/calls/contacts/batch/create", json={"inputs": too_many_creates})
    read = client.post("/crm/v4/associations/calls/contacts/batch/read", json={"inputs": too_many_reads})

    assert "at most 2000" in assert_error_body(created, 400, "VALIDATION_ERROR")["message"]
    assert "at most 1000" in assert_error_body(read, 400, "VALIDATION_ERROR")["message"]


def test_v4_batch_read(client: httpx.Client) -> None:
    company = create(client, "companies", {"name": "Acme"})
    with_company = create(client, "contacts", {"firstname": "Anna"}, associations=[association(company["id"], 1)])
    without_company = create(client, "contacts", {"firstname": "Bo"})

    response = client.post(
        "/crm/v4/associations/contacts/companies/batch/read",
        json={"inputs": [{"id": with_company["id"]}, {"id": without_company["id"]}]},
    )

    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert body["results"] == [
        {
            "from": {"id": with_company["id"]},
            "to": [
                {
                    "toObjectId": int(company["id"]),
                    "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
                        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
                    ],
                }
            ],
        }
    ]
    assert body["errors"][0]["context"] == {"fromObjectId": [without_company["id"]]}


# ---------------------------------------------------------------------------------------------------------------
# Owners
# ---------------------------------------------------------------------------------------------------------------


def test_owners_filter_by_email(server: StandinServer, client: httpx.Client) -> None:
    ids = server.state.seed(
        {
            "owners": [
                {"email": "ada@example.com", "firstName": "Ada", "lastName": "Agent"},
                {"email": "bo@example.com", "firstName": "Bo", "lastName": "Boss", "id": "777", "userId": 888},
            ]
        }
    )

    found = client.get("/crm/v3/owners", params={"email": "BO@Example.com", "limit": 100}).json()
    everyone = client.get("/crm/v3/owners/").json()

    assert found["results"] == [
        {
            "id": "777",
            "email": "bo@example.com",
            "firstName": "Bo",
            "lastName": "Boss",
            "userId": 888,
            "userIdIncludingInactive": 888,
            "type": "PERSON",
            "teams": [],
            "archived": False,
            "createdAt": found["results"][0]["createdAt"],
            "updatedAt": found["results"][0]["updatedAt"],
        }
    ]
    assert [owner["id"] for owner in everyone["results"]] == sorted(ids["owners"], key=int)


def test_owners_paging(server: StandinServer, client: httpx.Client) -> None:
    server.state.seed({"owners": [{"email": f"agent{index}@example.com"} for index in range(3)]})

    first = client.get("/crm/v3/owners", params={"limit": 2}).json()
    second = client.get("/crm/v3/owners", params={"limit": 2, "after": first["paging"]["next"]["after"]}).json()

    assert len(first["results"]) == 2
    assert len(second["results"]) == 1
    assert "paging" not in second


def test_owner_by_id_and_user_id(server: StandinServer, client: httpx.Client) -> None:
    owner = server.state.add_owner("ada@example.com", "Ada", "Agent")

    by_id = client.get(f"/crm/v3/owners/{owner['id']}")
    by_user_id = client.get(f"/crm/v3/owners/{owner['userId']}", params={"idProperty": "userId"})
    user_id_as_id = client.get(f"/crm/v3/owners/{owner['userId']}")

    assert by_id.json()["email"] == "ada@example.com"
    assert by_user_id.json()["id"] == owner["id"]
    assert_error_body(user_id_as_id, 404, "OBJECT_NOT_FOUND")


# ---------------------------------------------------------------------------------------------------------------
# Admin API and in-process use
# ---------------------------------------------------------------------------------------------------------------


def test_admin_seed_and_dump(admin: httpx.Client) -> None:
    seed = {
        "owners": [{"email": "ada@example.com", "firstName": "Ada", "lastName": "Agent"}],
        "companies": [{"id": "5001", "properties": {"name": "Acme", "domain": "acme.example"}}],
        "contacts": [{"properties": {"firstname": "Anna", "phone": "070-123 45 67"}, "primary_company_id": "5001"}],
    }

    seeded = admin.post("/_standin/seed", json=seed)
    contacts = admin.get("/_standin/objects/contacts").json()["results"]
    associations = admin.get("/_standin/associations").json()["results"]

    assert seeded.status_code == 201
    ids = seeded.json()
    assert ids["companies"] == ["5001"]
    assert len(ids["owners"]) == 1
    assert [contact["id"] for contact in contacts] == ids["contacts"]
    assert contacts[0]["properties"]["hs_searchable_calculated_phone_number"] == "701234567"
    assert [(link["id"], link["typeId"]) for link in contacts[0]["associations"]["companies"]] == [
        ("5001", 1),
        ("5001", 279),
    ]
    assert {(row["fromObjectType"], row["associationTypeId"]) for row in associations} == {
        ("contacts", 1),
        ("contacts", 279),
        ("companies", 2),
        ("companies", 280),
    }


def test_admin_seed_rolls_back(admin: httpx.Client) -> None:
    seed = {
        "companies": [{"properties": {"name": "Acme"}}],
        "contacts": [{"properties": {"firstname": "Anna"}, "primary_company_id": "999999"}],
    }

    response = admin.post("/_standin/seed", json=seed)

    assert_error_body(response, 400, "VALIDATION_ERROR")
    assert admin.get("/_standin/objects/companies").json()["results"] == []


def test_admin_reset(server: StandinServer, client: httpx.Client, admin: httpx.Client) -> None:
    create(client, "contacts", {"firstname": "Anna"})
    server.state.add_owner("ada@example.com")

    response = admin.post("/_standin/reset")

    assert response.status_code == 200
    assert admin.get("/_standin/objects/contacts").json()["results"] == []
    assert client.get("/crm/v3/owners").json()["results"] == []
    assert admin.get("/_standin/requests").json()["total"] == 1


def test_admin_request_counts(client: httpx.Client, admin: httpx.Client) -> None:
    contact = create(client, "contacts", {"email": "anna@example.com"})
    client.post("/crm/v3/objects/contacts", json={"properties": {"email": "anna@example.com"}})
    client.get(f"/crm/v3/objects/contacts/{contact['id']}")
    client.post("/crm/v3/objects/contacts/search", json={})

    counts = admin.get("/_standin/requests").json()

    assert counts == {
        "total": 4,
        "by_route": {
            "POST /crm/v3/objects/{object_type}": 2,
            "GET /crm/v3/objects/{object_type}/{object_id}": 1,
            "POST /crm/v3/objects/{object_type}/search": 1,
        },
        "by_status": {"201": 1, "409": 1, "200": 2},
        "rate_limited": 0,
    }


def test_fault_not_applied(client: httpx.Client, admin: httpx.Client) -> None:
    queued = admin.post("/_standin/faults", json={"status": 503, "count": 2, "path_contains": "/calls"})

    failed = [
        client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}}) for _ in range(2)
    ]
    unaffected = client.post("/crm/v3/objects/contacts", json={"properties": {"firstname": "Anna"}})
    stored_before = admin.get("/_standin/objects/calls").json()["results"]
    succeeded = client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    assert queued.status_code == 201
    for response in failed:
        assert_error_body(response, 503, "INTERNAL_ERROR")
        assert "X-HubSpot-RateLimit-Max" in response.headers
    assert unaffected.status_code == 201
    assert stored_before == []
    assert succeeded.status_code == 201
    assert admin.get("/_standin/faults").json() == {"faults": []}


def test_fault_after_applying(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post(
        "/_standin/faults",
        json={
            "status": 502,
            "path_contains": "/calls",
            "method": "POST",
            "apply_request": True,
            "retry_after_seconds": 3,
        },
    )

    response = client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    assert_error_body(response, 502, "INTERNAL_ERROR")
    assert response.headers["Retry-After"] == "3"
    assert len(admin.get("/_standin/objects/calls").json()["results"]) == 1


def test_fault_exact_path(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post("/_standin/faults", json={"status": 503, "path": "/crm/v3/objects/calls", "method": "POST"})

    searched = client.post("/crm/v3/objects/calls/search", json={})
    created = client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    assert searched.status_code == 200
    assert_error_body(created, 503, "INTERNAL_ERROR")


def test_fault_429_policy(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post("/_standin/faults", json={"status": 429, "policy_name": "DAILY"})

    response = client.get("/crm/v3/owners")

    body = assert_error_body(response, 429, None)
    assert body["policyName"] == "DAILY"
    assert admin.get("/_standin/requests").json()["rate_limited"] == 1


@pytest.mark.parametrize(
    ("spec", "message_part"),
    [
        ({"status": 200}, "status must be at least 400"),
        ({"count": 2}, "give a status"),
        ({"status": 502, "delay": 5}, "unknown keys ['delay']"),
        ({"status": 502, "apply_request": "yes"}, "apply_request must be true or false"),
        ({"delay_seconds": -1}, "between 0"),
        ({"delay_seconds": 601}, "between 0"),
        ({"delay_seconds": "5"}, "number of seconds"),
        ({"drop_connection": True, "status": 502}, "takes neither status"),
        ({"drop_connection": True, "required_scopes": ["crm.objects.owners.read"]}, "takes neither status"),
        ({"required_scopes": []}, "non-empty list"),
        ({"required_scopes": ["crm.objects.contacts.write"], "status": 401}, "needs status 403"),
    ],
    ids=[
        "status-200",
        "no-effect",
        "unknown-key",
        "apply-not-boolean",
        "negative-delay",
        "delay-too-long",
        "delay-string",
        "drop-with-status",
        "drop-with-scopes",
        "empty-scopes",
        "scopes-with-401",
    ],
)
def test_fault_rejects_invalid_spec(admin: httpx.Client, spec: dict[str, Any], message_part: str) -> None:
    response = admin.post("/_standin/faults", json=spec)

    body = assert_error_body(response, 400, "VALIDATION_ERROR")
    assert message_part in body["message"]
    assert admin.get("/_standin/faults").json() == {"faults": []}


def test_fault_listed_with_all_keys(admin: httpx.Client) -> None:
    spec = {"path": "/crm/v3/objects/calls", "method": "POST", "delay_seconds": 2.5, "apply_request": True}

    admin.post("/_standin/faults", json=spec)
    listed = admin.get("/_standin/faults").json()["faults"]

    assert listed == [
        {
            "status": None,
            "remaining": 1,
            "path_contains": "",
            "path": "/crm/v3/objects/calls",
            "method": "POST",
            "category": None,
            "message": None,
            "policy_name": None,
            "retry_after_seconds": None,
            "apply_request": True,
            "delay_seconds": 2.5,
            "drop_connection": False,
            "required_scopes": [],
        }
    ]


def test_fault_5xx_burst_on_one_path(client: httpx.Client, admin: httpx.Client) -> None:
    path = "/crm/v3/objects/contacts/batch/create"
    admin.post("/_standin/faults", json={"status": 502, "count": 3, "path": path})
    body = {"inputs": [{"properties": {"firstname": "Anna"}, "objectWriteTraceId": "trace-1"}]}

    burst = [client.post(path, json=body) for _ in range(3)]
    other_path = client.post("/crm/v3/objects/contacts/search", json={})
    after_burst = client.post(path, json=body)

    for response in burst:
        assert_error_body(response, 502, "INTERNAL_ERROR")
        assert "Retry-After" not in response.headers
    assert other_path.status_code == 200
    assert after_burst.status_code == 201
    assert len(admin.get("/_standin/objects/contacts").json()["results"]) == 1
    assert admin.get("/_standin/requests").json()["by_status"] == {"502": 3, "200": 1, "201": 1}


@pytest.mark.parametrize(
    ("spec", "category", "retry_after"),
    [
        ({"status": 477, "retry_after_seconds": 30}, "MIGRATION_IN_PROGRESS", "30"),
        ({"status": 423}, "LOCKED", None),
        ({"status": 423, "retry_after_seconds": 2}, "LOCKED", "2"),
    ],
    ids=["477-retry-after", "423", "423-retry-after"],
)
def test_fault_hubspot_specific_status(
    client: httpx.Client, admin: httpx.Client, spec: dict[str, Any], category: str, retry_after: str | None
) -> None:
    admin.post("/_standin/faults", json={**spec, "path": "/crm/v3/objects/calls", "method": "POST"})

    response = client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    assert_error_body(response, spec["status"], category)
    assert response.headers.get("Retry-After") == retry_after
    assert "X-HubSpot-RateLimit-Remaining" in response.headers
    assert admin.get("/_standin/objects/calls").json()["results"] == []


def test_fault_missing_scopes_403(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post(
        "/_standin/faults",
        json={"required_scopes": ["crm.objects.contacts.write"], "path": "/crm/v3/objects/contacts", "method": "POST"},
    )

    response = client.post("/crm/v3/objects/contacts", json={"properties": {"firstname": "Anna"}})

    body = assert_error_body(response, 403, "MISSING_SCOPES")
    assert body["message"].startswith("This app hasn't been granted all required scopes to make this call.")
    assert body["errors"] == [
        {
            "message": "One or more of the following scopes are required.",
            "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]},
        }
    ]
    assert body["links"] == {"scopes": "https://developers.hubspot.com/scopes"}
    assert admin.get("/_standin/objects/contacts").json()["results"] == []


def test_fault_delay_slows_response(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post("/_standin/faults", json={"delay_seconds": 0.5, "path": "/crm/v3/objects/contacts", "method": "GET"})

    started = time.monotonic()
    slow = client.get("/crm/v3/objects/contacts")
    slow_seconds = time.monotonic() - started
    started = time.monotonic()
    normal = client.get("/crm/v3/objects/contacts")
    normal_seconds = time.monotonic() - started

    assert slow.status_code == 200
    assert slow.json() == {"results": []}
    assert "X-HubSpot-RateLimit-Remaining" in slow.headers
    assert slow_seconds >= 0.5
    assert normal.status_code == 200
    assert normal_seconds < 0.5


def test_fault_delay_then_status(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post("/_standin/faults", json={"status": 504, "delay_seconds": 0.3, "path": "/crm/v3/objects/calls"})

    started = time.monotonic()
    response = client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    assert time.monotonic() - started >= 0.3
    assert_error_body(response, 504, "INTERNAL_ERROR")
    assert admin.get("/_standin/objects/calls").json()["results"] == []


def _wait_until_fault_taken(server: StandinServer) -> None:
    deadline = time.monotonic() + 5
    while server.state.pending_faults() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.state.pending_faults() == []


def test_fault_delay_leaves_other_requests_fast(
    server: StandinServer, client: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/_standin/faults", json={"delay_seconds": 1.5, "path": "/crm/v3/owners"})
    headers = {"Authorization": f"Bearer {TOKEN}"}

    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        slow = pool.submit(httpx.get, f"{server.url}/crm/v3/owners", headers=headers, timeout=10.0)
        _wait_until_fault_taken(server)
        fast_started = time.monotonic()
        fast = client.get("/crm/v3/objects/contacts")
        fast_seconds = time.monotonic() - fast_started
        slow_still_running = not slow.done()
        slow_response = slow.result()
        slow_seconds = time.monotonic() - started

    assert fast.status_code == 200
    assert fast_seconds < 1.0
    assert slow_still_running
    assert slow_response.status_code == 200
    assert slow_seconds >= 1.5


def test_fault_timeout_after_write(server: StandinServer, client: httpx.Client, admin: httpx.Client) -> None:
    admin.post(
        "/_standin/faults",
        json={"delay_seconds": 60, "apply_request": True, "path": "/crm/v3/objects/calls", "method": "POST"},
    )
    body = {"properties": {"hs_timestamp": CALL_TIMESTAMP, "hs_call_external_id": "lid-timeout"}}

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/crm/v3/objects/calls", json=body, timeout=0.3)
    stored = admin.get("/_standin/objects/calls").json()["results"]
    read_back = client.get(f"/crm/v3/objects/calls/{stored[0]['id']}", params={"properties": "hs_call_external_id"})
    # The held request is counted once the stand-in stops holding it, which the client's disconnect cuts short.
    while "201" not in server.state.request_counts()["by_status"] and time.monotonic() < started + 10:
        time.sleep(0.05)

    assert [call["properties"]["hs_call_external_id"] for call in stored] == ["lid-timeout"]
    assert read_back.status_code == 200
    assert read_back.json()["properties"]["hs_call_external_id"] == "lid-timeout"
    assert server.state.request_counts()["by_status"] == {"200": 1, "201": 1}
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(("apply_request", "stored_calls"), [(False, 0), (True, 1)], ids=["not-applied", "applied"])
def test_fault_drop_connection(
    client: httpx.Client, admin: httpx.Client, apply_request: bool, stored_calls: int
) -> None:
    admin.post(
        "/_standin/faults",
        json={"drop_connection": True, "apply_request": apply_request, "path": "/crm/v3/objects/calls"},
    )

    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})
    next_request = client.get("/crm/v3/objects/calls")

    assert len(admin.get("/_standin/objects/calls").json()["results"]) == stored_calls
    assert next_request.status_code == 200
    assert admin.get("/_standin/requests").json()["by_status"] == {"dropped": 1, "200": 1}


def test_fault_drop_after_delay(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post(
        "/_standin/faults",
        json={"drop_connection": True, "apply_request": True, "delay_seconds": 0.3, "path": "/crm/v3/objects/calls"},
    )

    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/crm/v3/objects/calls", json={"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    assert time.monotonic() - started >= 0.3
    assert len(admin.get("/_standin/objects/calls").json()["results"]) == 1


def test_state_usable_in_process() -> None:
    state = StandinState([TOKEN])
    ids = state.seed(
        {
            "companies": [{"properties": {"name": "Acme"}}],
            "contacts": [{"properties": {"email": "anna@example.com"}, "primary_company_id": None}],
        }
    )

    contacts = state.dump_objects("contacts")
    with pytest.raises(StandinError) as conflict:
        state.create_object("contacts", {"properties": {"email": "ANNA@example.com"}})

    assert [contact["id"] for contact in contacts] == ids["contacts"]
    assert contacts[0]["associations"] == {}
    assert conflict.value.status == 409
    assert state.request_counts()["total"] == 0


def test_state_requires_token() -> None:
    with pytest.raises(ValueError, match="at least one non-empty token"):
        StandinState([])


# ---------------------------------------------------------------------------------------------------------------
# Server and command line
# ---------------------------------------------------------------------------------------------------------------


def test_server_url_and_stop() -> None:
    server = StandinServer(StandinState([TOKEN]))
    with pytest.raises(RuntimeError, match="no port before start"):
        _ = server.url

    server.start()
    url = server.url
    healthy = httpx.get(f"{url}/_standin/health")
    server.stop()
    server.stop()

    assert url.startswith("http://127.0.0.1:")
    assert healthy.json() == {"status": "ok"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_standin/health", timeout=2.0)


def test_server_builds_state_from_options() -> None:
    with StandinServer(tokens=[TOKEN], rate_limit_per_interval=7) as server:
        response = _get_contacts(server)

    assert response.status_code == 200
    assert response.headers["X-HubSpot-RateLimit-Max"] == "7"
    with pytest.raises(TypeError, match="either a state or StandinState options"):
        StandinServer(StandinState([TOKEN]), tokens=[TOKEN])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_cli_serves_seed_file(tmp_path: Any) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps({"owners": [{"email": "ada@example.com", "firstName": "Ada"}]}))
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "callsync_dagster.hubspot_standin",
        "--port",
        str(port),
        "--token",
        TOKEN,
        "--seed-file",
        str(seed_file),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    owners: list[dict[str, Any]] | None = None
    try:
        deadline = time.monotonic() + 20
        while owners is None and time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/crm/v3/owners", headers={"Authorization": f"Bearer {TOKEN}"}
                )
                owners = response.json()["results"]
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)

    assert owners is not None, stderr
    assert [owner["email"] for owner in owners] == ["ada@example.com"]
    assert process.returncode == 0, stderr
    assert "HubSpot stand-in stopped" in stderr
    assert TOKEN not in stderr


def test_cli_rejects_missing_seed_file(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--token", TOKEN, "--seed-file", str(tmp_path / "missing.json")])

    assert exited.value.code == 2
    assert "cannot read seed file" in capsys.readouterr().err
