"""Fidelity tests: HubSpot's own Python SDK (hubspot-api-client 12.0.0) against the running stand-in.

The SDK deserialises every response into its generated models. The `hubspot` fixture turns on the models'
client-side validation, which is off by default and raises ValueError for a missing required field or an unknown
enum value, so these tests fail when a response shape drifts from HubSpot's OpenAPI specs. They cover every
endpoint that callsync calls, batch endpoints included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm import deals as sdk_deals
from hubspot.crm.associations.v4 import AssociationSpec as V4AssociationSpec
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.associations.v4 import PublicObjectId as V4PublicObjectId
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyInput
from hubspot.crm.contacts import ApiException as ContactsApiException
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputForCreate as ContactBatchCreate
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId as ContactBatchRead
from hubspot.crm.contacts import (
    BatchResponseSimplePublicObjectWithErrors,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)
from hubspot.crm.contacts import SimplePublicObjectBatchInputForCreate as ContactBatchInput
from hubspot.crm.contacts import SimplePublicObjectInputForCreate as ContactInput
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput
from hubspot.crm.objects import notes as sdk_notes
from hubspot.crm.objects import tasks as sdk_tasks
from hubspot.crm.objects.calls import ApiException as CallsApiException
from hubspot.crm.objects.calls import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicAssociationsForObject,
    PublicObjectId,
)
from hubspot.crm.objects.calls import BatchReadInputSimplePublicObjectId as CallBatchRead
from hubspot.crm.objects.calls import Filter as CallFilter
from hubspot.crm.objects.calls import FilterGroup as CallFilterGroup
from hubspot.crm.objects.calls import PublicObjectSearchRequest as CallSearchRequest
from hubspot.crm.objects.calls import SimplePublicObjectBatchInputForCreate as CallBatchInput
from hubspot.crm.objects.calls import SimplePublicObjectId as CallId
from hubspot.crm.objects.calls import SimplePublicObjectInputForCreate as CallInput
from hubspot.crm.objects.notes import AssociationSpec as NoteAssociationSpec
from hubspot.crm.objects.notes import PublicAssociationsForObject as NoteAssociations
from hubspot.crm.objects.notes import PublicObjectId as NotePublicObjectId
from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate as NoteInput
from hubspot.crm.objects.tasks import AssociationSpec as TaskAssociationSpec
from hubspot.crm.objects.tasks import PublicAssociationsForObject as TaskAssociations
from hubspot.crm.objects.tasks import PublicObjectId as TaskPublicObjectId
from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate as TaskInput

from callsync_dagster.core.conversations import SyncType, conversation_marker, marker_search_filter
from callsync_dagster.hubspot_standin import StandinServer, StandinState

TOKEN = "standin-sdk-token"
CALL_TIMESTAMP = "2025-03-01T09:30:00Z"


@pytest.fixture(scope="module")
def shared_server() -> Iterator[StandinServer]:
    state = StandinState([TOKEN], rate_limit_per_interval=10_000, search_per_second=1_000)
    with StandinServer(state) as server:
        yield server


@pytest.fixture
def server(shared_server: StandinServer) -> StandinServer:
    shared_server.state.reset()
    return shared_server


@pytest.fixture
def hubspot(server: StandinServer) -> HubSpot:
    # The SDK copies every keyword argument onto each generated Configuration, so host= redirects all of its
    # API clients to the stand-in, and client_side_validation=True makes its response models check themselves.
    return HubSpot(access_token=TOKEN, host=server.url, client_side_validation=True)


@pytest.fixture
def unvalidated_hubspot(server: StandinServer) -> HubSpot:
    # NOTE: the SDK's StandardError model requires `links` and `errors` on every error of a 207. The stand-in
    # sends no `links`, and `errors` only for invalid property values. Whether HubSpot sends them has not been
    # checked, so 207s are parsed without validation.
    return HubSpot(access_token=TOKEN, host=server.url)


@pytest.fixture
def seeded(server: StandinServer) -> dict[str, str]:
    """Seed one owner, one company and one contact whose primary company it is, and return their ids."""
    ids = server.state.seed(
        {
            "owners": [{"email": "ada@example.com", "firstName": "Ada", "lastName": "Agent"}],
            "companies": [{"properties": {"name": "Acme AB", "domain": "acme.example"}}],
            "contacts": [],
        }
    )
    contact = server.state.create_object(
        "contacts",
        {
            "properties": {"email": "anna@example.com", "firstname": "Anna", "phone": "+46 70-123 45 67"},
            "associations": [
                {
                    "to": {"id": ids["companies"][0]},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}],
                }
            ],
        },
    )
    return {"owner": ids["owners"][0], "company": ids["companies"][0], "contact": contact["id"]}


def test_client_host_points_to_standin(hubspot: HubSpot, server: StandinServer) -> None:
    assert hubspot.crm.contacts.basic_api.api_client.configuration.host == server.url
    assert hubspot.crm.objects.calls.basic_api.api_client.configuration.host == server.url


def test_contact_create_and_read(hubspot: HubSpot) -> None:
    created = hubspot.crm.contacts.basic_api.create(
        ContactInput(properties={"email": "bo@example.com", "firstname": "Bo", "mobilephone": "073-999 88 77"})
    )

    read = hubspot.crm.contacts.basic_api.get_by_id(
        created.id, properties=["email", "mobilephone", "hs_searchable_calculated_mobile_number"]
    )

    assert read.id == created.id
    assert read.properties["email"] == "bo@example.com"
    assert read.properties["hs_searchable_calculated_mobile_number"] == "739998877"
    assert read.created_at == created.created_at
    assert read.archived is False


def test_contact_conflict_raises(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    with pytest.raises(ContactsApiException) as raised:
        hubspot.crm.contacts.basic_api.create(ContactInput(properties={"email": "ANNA@example.com"}))

    body = json.loads(raised.value.body)
    assert raised.value.status == 409
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {seeded['contact']}"
    assert raised.value.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]


def test_company_create_and_read(hubspot: HubSpot) -> None:
    created = hubspot.crm.companies.basic_api.create(
        CompanyInput(properties={"name": "Beta AB", "domain": "beta.example", "phone": "08-123 456 78"})
    )

    read = hubspot.crm.companies.basic_api.get_by_id(created.id)

    assert read.properties["name"] == "Beta AB"
    assert read.properties["domain"] == "beta.example"
    assert read.properties["hs_object_id"] == created.id


def test_call_with_associations(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    associations = [
        PublicAssociationsForObject(
            to=PublicObjectId(id=target_id),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)],
        )
        for target_id, type_id in ((seeded["contact"], 194), (seeded["company"], 182))
    ]
    properties = {
        "hs_timestamp": CALL_TIMESTAMP,
        "hs_call_title": "Inbound call from Anna",
        "hs_call_body": "<p>Summary</p>",
        "hs_call_direction": "INBOUND",
        "hs_call_duration": "61000",
        "hs_call_status": "COMPLETED",
        "hs_call_recording_url": "https://recordings.example.com/1.mp3",
        "hubspot_owner_id": seeded["owner"],
    }

    created = hubspot.crm.objects.calls.basic_api.create(CallInput(properties=properties, associations=associations))
    read = hubspot.crm.objects.calls.basic_api.get_by_id(
        created.id, properties=list(properties), associations=["contacts", "companies"]
    )

    assert read.properties["hs_call_title"] == "Inbound call from Anna"
    assert read.properties["hs_timestamp"] == "2025-03-01T09:30:00.000Z"
    assert read.properties["hubspot_owner_id"] == seeded["owner"]
    assert [(a.id, a.type) for a in read.associations["contacts"].results] == [(seeded["contact"], "call_to_contact")]
    assert [(a.id, a.type) for a in read.associations["companies"].results] == [(seeded["company"], "call_to_company")]


def test_call_validation_error_parsed(hubspot: HubSpot) -> None:
    with pytest.raises(CallsApiException) as raised:
        hubspot.crm.objects.calls.basic_api.create(CallInput(properties={"hs_call_title": "no timestamp"}))

    body = json.loads(raised.value.body)
    assert raised.value.status == 400
    assert body["category"] == "VALIDATION_ERROR"
    assert body["errors"][0]["context"] == {"propertyName": ["hs_timestamp"]}


def test_deal_create_and_read(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    created = hubspot.crm.deals.basic_api.create(
        DealInput(
            properties={
                "dealname": "Support contract",
                "pipeline": "default",
                "dealstage": "appointmentscheduled",
                "amount": "12000",
                "closedate": "2025-06-30",
                "hubspot_owner_id": seeded["owner"],
            }
        )
    )

    read = hubspot.crm.deals.basic_api.get_by_id(created.id)

    assert read.properties["dealname"] == "Support contract"
    assert read.properties["amount"] == "12000"
    assert read.properties["closedate"] == "2025-06-30T00:00:00.000Z"


def test_note_with_association(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    association = NoteAssociations(
        to=NotePublicObjectId(id=seeded["contact"]),
        types=[NoteAssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=202)],
    )

    created = hubspot.crm.objects.notes.basic_api.create(
        NoteInput(
            properties={"hs_note_body": "Transcript follows.", "hs_timestamp": CALL_TIMESTAMP},
            associations=[association],
        )
    )
    read = hubspot.crm.objects.notes.basic_api.get_by_id(
        created.id, properties=["hs_note_body"], associations=["contacts"]
    )

    assert read.properties["hs_note_body"] == "Transcript follows."
    assert [(a.id, a.type) for a in read.associations["contacts"].results] == [(seeded["contact"], "note_to_contact")]


def test_task_with_association(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    association = TaskAssociations(
        to=TaskPublicObjectId(id=seeded["contact"]),
        types=[TaskAssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=204)],
    )

    created = hubspot.crm.objects.tasks.basic_api.create(
        TaskInput(
            properties={
                "hs_task_subject": "Call Anna back",
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": "HIGH",
                "hs_task_type": "CALL",
                "hs_timestamp": CALL_TIMESTAMP,
                "hubspot_owner_id": seeded["owner"],
            },
            associations=[association],
        )
    )
    read = hubspot.crm.objects.tasks.basic_api.get_by_id(
        created.id, properties=["hs_task_subject", "hs_task_status"], associations=["contacts"]
    )

    assert read.properties["hs_task_subject"] == "Call Anna back"
    assert read.properties["hs_task_status"] == "NOT_STARTED"
    assert [a.id for a in read.associations["contacts"].results] == [seeded["contact"]]


@pytest.mark.parametrize("phone_filter", ["701234567", "70*"], ids=["exact", "wildcard-token"])
def test_contact_search_by_phone(hubspot: HubSpot, seeded: dict[str, str], phone_filter: str) -> None:
    operator = "CONTAINS_TOKEN" if "*" in phone_filter else "EQ"
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(
                filters=[
                    Filter(property_name="hs_searchable_calculated_phone_number", operator=operator, value=phone_filter)
                ]
            )
        ],
        properties=["email", "phone", "mobilephone"],
        limit=10,
    )

    page = hubspot.crm.contacts.search_api.do_search(request)

    assert page.total == 1
    assert page.paging is None
    assert [result.id for result in page.results] == [seeded["contact"]]
    assert page.results[0].properties["phone"] == "+46 70-123 45 67"


def test_search_paging_parsed(hubspot: HubSpot, server: StandinServer) -> None:
    for index in range(3):
        server.state.create_object("contacts", {"properties": {"firstname": f"Person {index}"}})

    first = hubspot.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=2, after="0"))
    second = hubspot.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(limit=2, after=first.paging.next.after)
    )

    assert first.total == 3
    assert first.paging.next.after == "2"
    assert len(second.results) == 1
    assert second.paging is None


def test_owners_list(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    page = hubspot.crm.owners.owners_api.get_page(email="ADA@example.com", limit=100)
    by_id = hubspot.crm.owners.owners_api.get_by_id(int(seeded["owner"]))

    assert [owner.id for owner in page.results] == [seeded["owner"]]
    owner = page.results[0]
    assert owner.email == "ada@example.com"
    assert owner.type == "PERSON"
    assert owner.teams == []
    assert isinstance(owner.user_id, int)
    assert by_id.email == "ada@example.com"


def test_v4_associations_read(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    page = hubspot.crm.associations.v4.basic_api.get_page("contacts", seeded["contact"], "companies")
    batch = hubspot.crm.associations.v4.batch_api.get_page(
        "contacts",
        "companies",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=seeded["contact"])]
        ),
    )

    assert [result.to_object_id for result in page.results] == [seeded["company"]]
    types = [(t.category, t.type_id, t.label) for t in page.results[0].association_types]
    assert types == [("HUBSPOT_DEFINED", 1, "Primary"), ("HUBSPOT_DEFINED", 279, None)]
    assert batch.status == "COMPLETE"
    assert batch.results[0]._from.id == seeded["contact"]
    assert [to.to_object_id for to in batch.results[0].to] == [seeded["company"]]


def test_v4_default_association(hubspot: HubSpot, seeded: dict[str, str], server: StandinServer) -> None:
    call = server.state.create_object("calls", {"properties": {"hs_timestamp": CALL_TIMESTAMP}})

    result = hubspot.crm.associations.v4.basic_api.create_default("calls", call["id"], "contacts", seeded["contact"])
    page = hubspot.crm.associations.v4.basic_api.get_page("contacts", seeded["contact"], "calls")

    assert result.status == "COMPLETE"
    spec_ids = sorted(r.association_spec.association_type_id for r in result.results)
    assert spec_ids == [193, 194]
    assert [(r.to_object_id, [t.type_id for t in r.association_types]) for r in page.results] == [(call["id"], [193])]


def test_batch_create_calls(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    inputs = [
        CallBatchInput(
            properties={"hs_timestamp": CALL_TIMESTAMP, "hs_call_title": f"Call {index}"},
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id=seeded["contact"]),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=194)],
                )
            ],
            object_write_trace_id=f"trace-{index}",
        )
        for index in range(2)
    ]

    response = hubspot.crm.objects.calls.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
    )

    assert response.status == "COMPLETE"
    assert sorted(result.properties["hs_call_title"] for result in response.results) == ["Call 0", "Call 1"]
    assert sorted(result.object_write_trace_id for result in response.results) == ["trace-0", "trace-1"]


def _call_batch_input(contact_id: str, external_id: str) -> CallBatchInput:
    return CallBatchInput(
        properties={"hs_timestamp": CALL_TIMESTAMP, "hs_call_external_id": external_id},
        associations=[
            PublicAssociationsForObject(
                to=PublicObjectId(id=contact_id),
                types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=194)],
            )
        ],
        object_write_trace_id=external_id,
    )


def test_contact_search_in_phone_properties(hubspot: HubSpot, seeded: dict[str, str], server: StandinServer) -> None:
    mobile = server.state.create_object("contacts", {"properties": {"firstname": "Bo", "mobilephone": "073-999 88 77"}})
    server.state.create_object("contacts", {"properties": {"firstname": "Other", "phone": "070-765 43 21"}})
    numbers = ["701234567", "739998877", "812345678"]
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(filters=[Filter(property_name=name, operator="IN", values=numbers)])
            for name in ("hs_searchable_calculated_phone_number", "hs_searchable_calculated_mobile_number")
        ],
        properties=["phone", "mobilephone"],
        limit=200,
    )

    page = hubspot.crm.contacts.search_api.do_search(request)

    assert page.total == 2
    assert sorted(result.id for result in page.results) == sorted([seeded["contact"], mobile["id"]])


def test_contact_batch_create_and_read(hubspot: HubSpot) -> None:
    inputs = [
        ContactBatchInput(properties={"firstname": name, "phone": phone}, object_write_trace_id=f"trace-{name}")
        for name, phone in (("Anna", "0701234567"), ("Bo", "+46 73 999 88 77"))
    ]

    created = hubspot.crm.contacts.batch_api.create(ContactBatchCreate(inputs=inputs))
    read = hubspot.crm.contacts.batch_api.read(
        ContactBatchRead(
            inputs=[SimplePublicObjectId(id=result.id) for result in created.results],
            properties=["firstname", "hs_searchable_calculated_phone_number"],
            properties_with_history=[],
        )
    )

    assert created.status == "COMPLETE"
    assert sorted(result.object_write_trace_id for result in created.results) == ["trace-Anna", "trace-Bo"]
    assert {
        result.properties["firstname"]: result.properties["hs_searchable_calculated_phone_number"]
        for result in read.results
    } == {
        "Anna": "701234567",
        "Bo": "739998877",
    }


def test_contact_batch_create_207_parsed(unvalidated_hubspot: HubSpot, seeded: dict[str, str]) -> None:
    inputs = [
        ContactBatchInput(properties={"email": "new@example.com"}, object_write_trace_id="trace-new"),
        ContactBatchInput(properties={"email": "ANNA@example.com"}, object_write_trace_id="trace-duplicate"),
    ]

    response = unvalidated_hubspot.crm.contacts.batch_api.create(ContactBatchCreate(inputs=inputs))

    assert isinstance(response, BatchResponseSimplePublicObjectWithErrors)
    assert response.num_errors == 1
    assert [result.object_write_trace_id for result in response.results] == ["trace-new"]
    error = response.errors[0]
    assert error.category == "CONFLICT"
    assert error.message == f"Contact already exists. Existing ID: {seeded['contact']}"
    assert error.context == {"objectWriteTraceId": ["trace-duplicate"]}


def test_call_batch_create_and_read(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    inputs = [_call_batch_input(seeded["contact"], f"lid-{index}") for index in range(2)]

    created = hubspot.crm.objects.calls.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    read = hubspot.crm.objects.calls.batch_api.read(
        CallBatchRead(
            inputs=[CallId(id=result.id) for result in created.results],
            properties=["hs_call_external_id", "hs_timestamp"],
            properties_with_history=[],
        )
    )

    assert sorted(result.object_write_trace_id for result in created.results) == ["lid-0", "lid-1"]
    assert read.status == "COMPLETE"
    assert sorted(result.properties["hs_call_external_id"] for result in read.results) == ["lid-0", "lid-1"]
    assert {result.properties["hs_timestamp"] for result in read.results} == {"2025-03-01T09:30:00.000Z"}


def test_call_search_in_external_id(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    inputs = [_call_batch_input(seeded["contact"], external_id) for external_id in ("lid-a", "lid-b", "lid-c")]
    created = hubspot.crm.objects.calls.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    ids = {result.properties["hs_call_external_id"]: result.id for result in created.results}
    request = CallSearchRequest(
        filter_groups=[
            CallFilterGroup(
                filters=[CallFilter(property_name="hs_call_external_id", operator="IN", values=["lid-a", "lid-c"])]
            )
        ],
        properties=["hs_call_external_id"],
        limit=100,
    )

    page = hubspot.crm.objects.calls.search_api.do_search(request)

    assert page.total == 2
    assert sorted(result.id for result in page.results) == sorted([ids["lid-a"], ids["lid-c"]])


def test_v4_batch_read_calls_to_contacts(hubspot: HubSpot, seeded: dict[str, str]) -> None:
    inputs = [_call_batch_input(seeded["contact"], f"lid-{index}") for index in range(2)]
    created = hubspot.crm.objects.calls.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))

    batch = hubspot.crm.associations.v4.batch_api.get_page(
        "calls",
        "contacts",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=result.id) for result in created.results]
        ),
    )

    assert batch.status == "COMPLETE"
    assert sorted(result._from.id for result in batch.results) == sorted(result.id for result in created.results)
    for result in batch.results:
        assert [to.to_object_id for to in result.to] == [seeded["contact"]]
        assert [(t.category, t.type_id, t.label) for t in result.to[0].association_types] == [
            ("HUBSPOT_DEFINED", 194, None)
        ]


def test_owners_paging(hubspot: HubSpot, server: StandinServer) -> None:
    ids = server.state.seed({"owners": [{"email": f"agent{index}@example.com"} for index in range(3)]})["owners"]

    first = hubspot.crm.owners.owners_api.get_page(limit=2)
    second = hubspot.crm.owners.owners_api.get_page(limit=2, after=first.paging.next.after)

    assert [owner.id for owner in first.results + second.results] == ids
    assert second.paging is None
    assert [owner.email for owner in second.results] == ["agent2@example.com"]


def test_v4_batch_create_call_to_deal(hubspot: HubSpot, seeded: dict[str, str], server: StandinServer) -> None:
    deal = server.state.create_object("deals", {"properties": {"dealname": "Offer"}})
    call = server.state.create_object("calls", {"properties": {"hs_timestamp": CALL_TIMESTAMP}})
    inputs = [
        PublicAssociationMultiPost(
            _from=V4PublicObjectId(id=call["id"]),
            to=V4PublicObjectId(id=target_id),
            types=[V4AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)],
        )
        for target_id, type_id in ((deal["id"], 206), (seeded["company"], 182))
    ]

    deals = hubspot.crm.associations.v4.batch_api.create(
        "calls", "deals", BatchInputPublicAssociationMultiPost(inputs=inputs[:1])
    )
    companies = hubspot.crm.associations.v4.batch_api.create(
        "calls", "companies", BatchInputPublicAssociationMultiPost(inputs=inputs[1:])
    )
    linked = hubspot.crm.associations.v4.basic_api.get_page("deals", deal["id"], "calls")

    assert deals.status == "COMPLETE"
    pair = deals.results[0]
    assert (pair.from_object_type_id, pair.from_object_id, pair.to_object_type_id, pair.to_object_id) == (
        "0-48",
        call["id"],
        "0-3",
        deal["id"],
    )
    assert pair.labels == []
    assert [result.to_object_id for result in companies.results] == [seeded["company"]]
    assert [(r.to_object_id, [t.type_id for t in r.association_types]) for r in linked.results] == [(call["id"], [205])]


# The conversation workflow's objects: batch create with associations, marker search, batch read.


def _conversation_objects() -> list[tuple[SyncType, str, Any, Any]]:
    return [
        (SyncType.DEAL, "deals", sdk_deals, lambda client: client.crm.deals),
        (SyncType.NOTE, "notes", sdk_notes, lambda client: client.crm.objects.notes),
        (SyncType.TASK, "tasks", sdk_tasks, lambda client: client.crm.objects.tasks),
    ]


@pytest.mark.parametrize(
    ("kind", "object_type", "module", "api_of"), _conversation_objects(), ids=["deals", "notes", "tasks"]
)
def test_conversation_object_create_search_read(
    hubspot: HubSpot, server: StandinServer, kind: SyncType, object_type: str, module: Any, api_of: Any
) -> None:
    contact_id = server.state.create_object("contacts", {"properties": {"firstname": "Anna", "phone": "+46701234567"}})[
        "id"
    ]
    marker = conversation_marker("conv_sdk_check", kind)
    properties = {
        SyncType.DEAL: {
            "dealname": f"Anna \N{EN DASH} Offert · {marker}",
            "pipeline": "default",
            "dealstage": "qualifiedtobuy",
        },
        SyncType.NOTE: {
            "hs_note_body": f"<p>Sammanfattning</p><p>callsync reference: {marker} </p>",
            "hs_timestamp": "2026-12-04T09:00:00Z",
        },
        SyncType.TASK: {
            "hs_task_subject": "Följ upp Anna",
            "hs_task_body": f"<p>Skicka offert</p><p>callsync reference: {marker} </p>",
            "hs_task_status": "NOT_STARTED",
            "hs_timestamp": "2026-12-07T08:00:00Z",
        },
    }[kind]
    type_id = {SyncType.DEAL: 3, SyncType.NOTE: 202, SyncType.TASK: 204}[kind]
    api = api_of(hubspot)

    created = api.batch_api.create(
        module.BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                module.SimplePublicObjectBatchInputForCreate(
                    properties=properties,
                    associations=[
                        module.PublicAssociationsForObject(
                            to=module.PublicObjectId(id=contact_id),
                            types=[
                                module.AssociationSpec(
                                    association_category="HUBSPOT_DEFINED", association_type_id=type_id
                                )
                            ],
                        )
                    ],
                    object_write_trace_id=marker,
                )
            ]
        )
    )
    object_id = created.results[0].id
    search_filter = marker_search_filter(marker, kind)
    found = api.search_api.do_search(
        public_object_search_request=module.PublicObjectSearchRequest(
            filter_groups=[
                module.FilterGroup(
                    filters=[
                        module.Filter(
                            property_name=search_filter["propertyName"],
                            operator=search_filter["operator"],
                            value=search_filter["value"],
                        )
                    ]
                )
            ],
            properties=[search_filter["propertyName"]],
            limit=10,
        )
    )
    read = api.batch_api.read(
        module.BatchReadInputSimplePublicObjectId(
            inputs=[module.SimplePublicObjectId(id=object_id)], properties=[search_filter["propertyName"]]
        )
    )

    assert [result.id for result in found.results] == [object_id]
    assert [result.id for result in read.results] == [object_id]
    assert marker in read.results[0].properties[search_filter["propertyName"]]
    associations = server.state.get_associations(object_type, object_id, "contacts")
    assert [str(result["toObjectId"]) for result in associations["results"]] == [contact_id]
