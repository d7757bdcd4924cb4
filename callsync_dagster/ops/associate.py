"""associate: read each CALL back, make sure it hangs on its contact, company and deal."""

from dagster import OpExecutionContext, op

from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.ops.per_item import for_each_open_item
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.hubspot_errors import HubSpotNotFoundError


@op(description="Read each CALL back, add any missing contact, company or deal association, mark it synced.")
def associate(context: OpExecutionContext, batch: CallSyncBatch, hubspot: HubSpotResource) -> CallSyncBatch:
    client = hubspot.client

    def associate_one(item: CallSyncItem) -> None:
        if batch.dry_run and item.engagement_id is None:
            item.succeed()
            return
        assert item.engagement_id is not None, "upsert sets the CALL id of every open session"

        prefilled = item.engagement_id == item.session.hubspot_engagement_id
        try:
            call = client.get_call(item.engagement_id)
        except HubSpotNotFoundError:
            if not prefilled:
                raise
            item.fail(
                "call_not_found",
                f"the stored hubspot_engagement_id {item.engagement_id} does not exist in HubSpot; clear it on "
                "the call session to let callsync create a new CALL",
                retryable=False,
            )
            return

        external_id = (call.get("properties") or {}).get("hs_call_external_id")
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
            return

        # A CALL found from an earlier attempt may predate a contact or deal that was set since, so the
        # inline associations are checked rather than assumed.
        expected = {
            "contacts": item.contact_id,
            "companies": item.company_id,
            "deals": item.session.hubspot_deal_id,
        }
        for object_type, object_id in expected.items():
            if object_id and object_id not in associated_ids(call, object_type):
                if batch.dry_run:
                    item.record("association_would_be_added", detail={"to": object_type, "id": object_id})
                    continue
                client.associate_call(item.engagement_id, object_type, object_id)
                item.record("association_added", hubspot_object_id=object_id, detail={"to": object_type})

        item.record("call_confirmed", hubspot_object_id=item.engagement_id)
        item.succeed()

    for_each_open_item(batch, "associate", associate_one, context.log)
    return batch


def associated_ids(call: dict, object_type: str) -> set[str]:  # type: ignore[type-arg]
    """Return the ids a CALL read with `associations=` is associated to, for one object type."""
    results = ((call.get("associations") or {}).get(object_type) or {}).get("results") or []
    return {str(result.get("id")) for result in results}
