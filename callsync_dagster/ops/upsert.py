"""upsert: find or create the contact, then create the CALL unless it exists already."""

import json
from dataclasses import dataclass, field

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


@dataclass
class UpsertContext:
    """The state that the upsert of one batch shares between its sessions."""

    batch: CallSyncBatch
    client: HubSpotClient
    postgres: PostgresResource
    settings: CallSyncSettings
    # Contacts created in this run by E.164 number. HubSpot's search lags behind creates, so a second call
    # from the same new number in one batch would not find the first one's contact.
    created_contacts: dict[str, str] = field(default_factory=dict)


@op(description="Find or create each session's contact, look up its primary company, create the CALL idempotently.")
def upsert(
    context: OpExecutionContext,
    batch: CallSyncBatch,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> CallSyncBatch:
    if not batch.dry_run:
        renew_claims(batch, postgres, settings, context)
    shared = UpsertContext(batch, hubspot.client, postgres, settings)

    def upsert_one(item: CallSyncItem) -> None:
        if not resolve_contact(item, shared):
            return
        if item.contact_id:
            item.company_id = shared.client.get_primary_company_id(item.contact_id)
        item.call_associations = build_call_associations(item.contact_id, item.company_id, item.session.hubspot_deal_id)
        create_call_once(item, shared, context)

    for_each_open_item(batch, "upsert", upsert_one, context.log)
    return batch


def renew_claims(
    batch: CallSyncBatch, postgres: PostgresResource, settings: CallSyncSettings, context: OpExecutionContext
) -> None:
    """Extend the lease on the batch before HubSpot writes, and drop the sessions another run has taken."""
    open_items = batch.open_items()
    held = postgres.renew_claims(batch.run_id, [item.session.id for item in open_items], settings.claim_lease_minutes)
    for item in open_items:
        if item.session.id not in held:
            item.claim_lost = True
            context.log.warning(
                "Call session %s: the claim expired and another run took it, so this run leaves it alone",
                item.session.id,
            )


def resolve_contact(item: CallSyncItem, shared: UpsertContext) -> bool:
    """Set `item.contact_id`; return False when the session was skipped for want of a contact."""
    session = item.session
    if session.hubspot_contact_id:
        item.contact_id = session.hubspot_contact_id
        item.record("contact_prefilled", hubspot_object_id=item.contact_id)
        return True

    assert item.counterparty is not None, "enrich sets the counterparty of every open session"
    number = item.counterparty.number
    assert number is not None, "only a session with a prefilled contact lacks a usable number"

    if number.e164 in shared.created_contacts:
        item.contact_id = shared.created_contacts[number.e164]
        item.record("contact_matched", hubspot_object_id=item.contact_id, detail={"phone": number.e164, "from": "run"})
        return True

    candidates = shared.client.search_contacts_by_phone(number.national_significant_number)
    match = choose_contact(confirm_contact_matches(number, candidates, shared.settings.default_region))
    if match is not None:
        item.contact_id = match.contact_id
        item.record("contact_matched", hubspot_object_id=match.contact_id, detail={"phone": number.e164})
        if match.ambiguous_ids:
            item.record(
                "contact_ambiguous",
                hubspot_object_id=match.contact_id,
                detail={"phone": number.e164, "candidates": list(match.ambiguous_ids), "rule": "lowest id wins"},
            )
        return True

    if shared.settings.contact_policy == "skip":
        item.skip(
            "no_contact",
            f"no HubSpot contact has the number {number.e164} and contact_policy is 'skip'; "
            "create the contact in HubSpot or set contact_policy to 'create'",
        )
        return False

    properties = new_contact_properties(number)
    if shared.batch.dry_run:
        item.record("contact_would_be_created", detail={"properties": properties})
        return True
    item.contact_id = shared.client.create_contact(properties)
    shared.created_contacts[number.e164] = item.contact_id
    item.record("contact_created", hubspot_object_id=item.contact_id, detail={"phone": number.e164})
    return True


def create_call_once(item: CallSyncItem, shared: UpsertContext, context: OpExecutionContext) -> None:
    """Create the CALL unless this session already has one.

    HubSpot has no idempotency key for creates. A CALL id stored on the session (by the application or an
    earlier attempt) is used first. Otherwise the external id (the Telavox call id) is the key: a rerun
    after a crash, or after a create that timed out but was applied, finds the earlier CALL by search.
    """
    session = item.session
    assert item.call_properties is not None, "enrich builds the CALL properties of every open session"

    if session.hubspot_engagement_id:
        item.engagement_id = session.hubspot_engagement_id
        item.record("call_prefilled", hubspot_object_id=item.engagement_id)
        return

    # NOTE: a create that got a timeout or a 5xx may have been applied, and HubSpot's search can lag
    # behind it (up to 30 s in one report). Automatic retries wait retry_initial_delay_minutes at least,
    # but an operator's replay by id within that lag could miss the CALL and create a second one.
    existing_ids = shared.client.search_calls_by_external_id(session.telavox_call_id)
    if existing_ids:
        item.engagement_id = existing_ids[0]
        item.record(
            "call_found_existing",
            hubspot_object_id=item.engagement_id,
            detail={"hs_call_external_id": session.telavox_call_id, "all_ids": existing_ids},
        )
        return

    if shared.batch.dry_run:
        preview = dict(item.call_properties)
        preview["hs_call_body"] = preview["hs_call_body"][:_DRY_RUN_BODY_PREVIEW]
        context.log.info(
            "Dry run: would create CALL for session %s: %s",
            session.id,
            json.dumps({"properties": preview, "associations": item.call_associations}, ensure_ascii=False),
        )
        return

    # The intent is committed with a fresh lease before the request. The sync log then shows that a CALL
    # may exist even when the run dies before write-back, and no other run can claim the session while
    # the create is in flight.
    intent = SyncLogEntry(action="call_create_requested", detail={"hs_call_external_id": session.telavox_call_id})
    if not shared.postgres.extend_claim(session.id, shared.batch.run_id, shared.settings.claim_lease_minutes, [intent]):
        item.claim_lost = True
        context.log.warning("Call session %s: the claim was lost before the CALL create; not creating", session.id)
        return
    item.engagement_id = shared.client.create_call(item.call_properties, item.call_associations)
    item.record("call_created", hubspot_object_id=item.engagement_id)
