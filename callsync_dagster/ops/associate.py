"""associate: confirm each CALL in one batch read, and make sure it hangs on its contact, company and deal."""

from dagster import OpExecutionContext, op

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.ops.per_item import for_each_open_chunk, open_items
from callsync_dagster.resources.hubspot import HubSpotClient, HubSpotResource
from callsync_dagster.resources.settings import CallSyncSettings

# The association of a CALL to each kind of record, with its HubSpot-defined type id.
_ASSOCIATION_TYPES = (("contacts", hs.CALL_TO_CONTACT), ("companies", hs.CALL_TO_COMPANY), ("deals", hs.CALL_TO_DEAL))


@op(
    description="Read the CALLs back in batches, add any missing contact, company or deal association, mark them synced."
)
def associate(
    context: OpExecutionContext, batch: CallSyncBatch, hubspot: HubSpotResource, settings: CallSyncSettings
) -> CallSyncBatch:

    def associate_chunk(chunk: list[CallSyncItem]) -> None:
        if batch.dry_run:
            for item in chunk:
                if item.engagement_id is None:
                    item.succeed()
        items = open_items(chunk)
        if not items:
            return
        client = hubspot.client_for(items[0].portal)
        assert client is not None, "enrich skips the sessions of a portal without a token"
        confirmed = confirm_calls(items, client)
        add_missing_associations([item for item in confirmed if not item.call_created_now], client, batch.dry_run)
        for item in open_items(confirmed):
            item.record("call_confirmed", hubspot_object_id=item.engagement_id)
            item.succeed()

    for_each_open_chunk(batch, "associate", settings.hubspot_batch_size, associate_chunk, context.log)
    return batch


def confirm_calls(items: list[CallSyncItem], client: HubSpotClient) -> list[CallSyncItem]:
    """Batch-read the CALLs; fail the sessions whose CALL is missing or belongs to another call."""
    call_ids = [item.engagement_id for item in items if item.engagement_id]
    result = client.batch_read("calls", sorted(set(call_ids)), list(hs.CALL_PROPERTIES_READ))
    calls = {str(call["id"]): call for call in result.results}

    confirmed = []
    for item in items:
        assert item.engagement_id is not None, "upsert sets the CALL id of every open session"
        prefilled = item.engagement_id == item.session.hubspot_engagement_id
        call = calls.get(item.engagement_id)
        if call is None:
            if prefilled:
                message = (
                    f"the stored hubspot_engagement_id {item.engagement_id} does not exist in HubSpot; clear it on "
                    "the call session to let callsync create a new CALL"
                )
            else:
                message = f"CALL {item.engagement_id} was created or found but cannot be read back; check it in HubSpot"
            item.fail("call_not_found", message, retryable=not prefilled)
            continue

        external_id = (call.get("properties") or {}).get(hs.CALL_EXTERNAL_ID_PROPERTY)
        # A CALL the application logged before callsync may have no external id; one with another
        # external id belongs to another call.
        accepted_ids = {item.session.telavox_call_id, None} if prefilled else {item.session.telavox_call_id}
        if external_id not in accepted_ids:
            item.fail(
                "call_mismatch",
                f"CALL {item.engagement_id} has hs_call_external_id {external_id!r}, not "
                f"{item.session.telavox_call_id!r}; check the CALL in HubSpot before retrying",
                retryable=False,
            )
            continue
        confirmed.append(item)
    return confirmed


def add_missing_associations(items: list[CallSyncItem], client: HubSpotClient, dry_run: bool) -> None:
    """Associate CALLs that this run did not create to the records they should hang on.

    A CALL found from an earlier attempt, or logged by the application, may predate a contact or deal
    set since, so its associations are read rather than assumed.
    """
    for to_type, type_id in _ASSOCIATION_TYPES:
        expected: dict[str, tuple[CallSyncItem, str]] = {}
        for item in items:
            target = target_id(item, to_type)
            if item.engagement_id and target:
                expected[item.engagement_id] = (item, target)
        if not expected:
            continue
        existing = client.batch_read_associations("calls", to_type, sorted(expected))
        missing = [
            (call_id, item, expected_id)
            for call_id, (item, expected_id) in expected.items()
            if expected_id not in existing.get(call_id, {})
        ]
        if not missing:
            continue
        if dry_run:
            for _, item, expected_id in missing:
                item.record("association_would_be_added", detail={"to": to_type, "id": expected_id})
            continue
        rejected = client.batch_create_associations(
            "calls", to_type, type_id, [(call_id, expected_id) for call_id, _, expected_id in missing]
        )
        rejected_pairs = {(call_id, to_id): error for call_id, to_id, error in rejected}
        for call_id, item, expected_id in missing:
            error = rejected_pairs.get((call_id, expected_id))
            if error is None:
                item.record("association_added", hubspot_object_id=expected_id, detail={"to": to_type})
                continue
            # Only this session fails; the other CALLs of the chunk are associated and synced.
            item.fail(
                "hubspot_association_rejected",
                f"HubSpot rejected the association of CALL {call_id} to {to_type} {expected_id}: {error.message}; "
                f"check that the record exists in HubSpot, or clear its id "
                "on the call session",
                retryable=False,
                correlation_id=error.correlation_id,
            )


def target_id(item: CallSyncItem, to_type: str) -> str | None:
    if to_type == "contacts":
        return item.contact_id
    if to_type == "companies":
        return item.company_id
    return item.session.hubspot_deal_id
