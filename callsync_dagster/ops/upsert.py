"""upsert: find or create the contact, then create the CALL unless it exists already."""

import json

from dagster import OpExecutionContext, op

from callsync_dagster.core.call_engagement import build_call_associations
from callsync_dagster.core.contacts import choose_contact, confirm_contact_matches, new_contact_properties
from callsync_dagster.core.models import SyncLogEntry
from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.ops.per_item import for_each_open_item
from callsync_dagster.resources.hubspot import HubSpotClient, HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

# Dry runs log the CALL body cut to this many characters: enough to check it, never a whole transcript.
_DRY_RUN_BODY_PREVIEW = 300


@op(description="Find or create each session's contact, look up its primary company, create the CALL idempotently.")
def upsert(
    context: OpExecutionContext,
    batch: CallSyncBatch,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> CallSyncBatch:
    client = hubspot.client

    def upsert_one(item: CallSyncItem) -> None:
        if not resolve_contact(item, client, settings, batch.dry_run):
            context.log.info("Skipped call session %s: %s", item.session.id, item.outcome and item.outcome.reason)
            return
        if item.contact_id:
            item.company_id = client.get_primary_company_id(item.contact_id)
        item.call_associations = build_call_associations(item.contact_id, item.company_id, item.session.hubspot_deal_id)
        create_call_once(item, client, postgres, batch, context)

    for_each_open_item(batch, "upsert", upsert_one, context.log)
    return batch


def resolve_contact(item: CallSyncItem, client: HubSpotClient, settings: CallSyncSettings, dry_run: bool) -> bool:
    """Set `item.contact_id`; return False when the session was skipped for want of a contact."""
    session = item.session
    if session.hubspot_contact_id:
        item.contact_id = session.hubspot_contact_id
        item.record("contact_prefilled", hubspot_object_id=item.contact_id)
        return True

    assert item.counterparty is not None, "enrich sets the counterparty of every open session"
    number = item.counterparty.number
    assert number is not None, "only a session with a prefilled contact lacks a usable number"
    candidates = client.search_contacts_by_phone(number.national_significant_number)
    match = choose_contact(confirm_contact_matches(number, candidates, settings.default_region))

    if match is not None:
        item.contact_id = match.contact_id
        item.record("contact_matched", hubspot_object_id=match.contact_id, detail={"phone": number.e164})
        if match.ambiguous_ids:
            item.record(
                "contact_ambiguous",
                hubspot_object_id=match.contact_id,
                detail={
                    "phone": number.e164,
                    "candidates": list(match.ambiguous_ids),
                    "rule": "lowest id wins",
                },
            )
        return True

    if settings.contact_policy == "skip":
        item.skip(
            "no_contact",
            f"no HubSpot contact has the number {number.e164} and contact_policy is 'skip'; "
            "create the contact in HubSpot or set contact_policy to 'create'",
        )
        return False

    properties = new_contact_properties(number)
    if dry_run:
        item.record("contact_would_be_created", detail={"properties": properties})
        return True
    item.contact_id = client.create_contact(properties)
    item.record("contact_created", hubspot_object_id=item.contact_id, detail={"phone": number.e164})
    return True


def create_call_once(
    item: CallSyncItem,
    client: HubSpotClient,
    postgres: PostgresResource,
    batch: CallSyncBatch,
    context: OpExecutionContext,
) -> None:
    """Create the CALL unless one with this session's `hs_call_external_id` exists.

    HubSpot has no idempotency key for creates, so the external id (the Telavox call id) is the key: a
    rerun after a crash, or after a create that timed out but was applied, finds the earlier CALL.
    """
    session = item.session
    assert item.call_properties is not None, "enrich builds the CALL properties of every open session"

    existing_ids = client.search_calls_by_external_id(session.telavox_call_id)
    if existing_ids:
        item.engagement_id = existing_ids[0]
        item.record(
            "call_found_existing",
            hubspot_object_id=item.engagement_id,
            detail={"hs_call_external_id": session.telavox_call_id, "all_ids": existing_ids},
        )
        return

    if batch.dry_run:
        preview = dict(item.call_properties)
        preview["hs_call_body"] = preview["hs_call_body"][:_DRY_RUN_BODY_PREVIEW]
        context.log.info(
            "Dry run: would create CALL for session %s: %s",
            session.id,
            json.dumps({"properties": preview, "associations": item.call_associations}, ensure_ascii=False),
        )
        return

    # The intent is committed before the request, so an operator can tell from the sync log that a
    # CALL may exist even when the run died before write-back.
    intent = SyncLogEntry(action="call_create_requested", detail={"hs_call_external_id": session.telavox_call_id})
    postgres.record_sync_log(session.id, batch.run_id, [intent])
    item.engagement_id = client.create_call(item.call_properties, item.call_associations)
    item.record("call_created", hubspot_object_id=item.engagement_id)
