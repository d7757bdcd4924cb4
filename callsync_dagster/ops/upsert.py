"""upsert: find or create the contacts, read their primary companies, create the CALLs that do not exist.

Sessions go through in chunks of `hubspot_batch_size`, each step one batch request for the whole chunk:
a handful of requests per hundred calls, where the original worker spent several per call.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from dagster import OpExecutionContext, op

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.call_body import build_body
from callsync_dagster.core.call_engagement import build_call_associations, build_call_properties
from callsync_dagster.core.hubspot_search import call_search_bodies
from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.ops.contact_resolution import ContactLookup, fail_batch_errors, resolve_contacts
from callsync_dagster.ops.per_item import for_each_open_chunk, open_items
from callsync_dagster.resources.hubspot import BatchResult, HubSpotClient, HubSpotResource
from callsync_dagster.resources.hubspot_errors import HubSpotError, HubSpotTransientError, HubSpotValidationError
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

# Dry runs log the CALL body cut to this many characters: enough to check it, never a whole transcript.
_DRY_RUN_BODY_PREVIEW = 300


@dataclass
class UpsertContext:
    """State that the chunks of one run's upsert share."""

    batch: CallSyncBatch
    client: HubSpotClient
    postgres: PostgresResource
    settings: CallSyncSettings
    portal: str
    contacts: ContactLookup

    @property
    def search_lag(self) -> timedelta:
        return timedelta(seconds=self.settings.search_lag_seconds)


@op(
    description="In chunks: find or create the contacts, read their primary companies, build the CALLs from the "
    "transcripts, create the CALLs that do not exist yet."
)
def upsert(
    context: OpExecutionContext,
    batch: CallSyncBatch,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> CallSyncBatch:
    shared_by_portal: dict[str, UpsertContext] = {}

    def upsert_chunk(chunk: list[CallSyncItem]) -> None:
        portal = chunk[0].portal
        if portal not in shared_by_portal:
            client = hubspot.client_for(portal)
            assert client is not None, "enrich skips the sessions of a portal without a token"
            contacts = ContactLookup(batch.run_id, batch.dry_run, client, postgres, settings, portal)
            shared_by_portal[portal] = UpsertContext(batch, client, postgres, settings, portal, contacts)
        shared = shared_by_portal[portal]
        if not batch.dry_run:
            renew_claims(chunk, shared, context)
        resolve_contacts(open_items(chunk), shared.contacts)
        find_primary_companies(open_items(chunk), shared)
        build_calls(open_items(chunk), shared)
        create_calls(open_items(chunk), shared, context)
        # The bodies contain whole transcripts and are not needed once the CALLs exist. Dropping them keeps
        # one chunk of them in a run's memory, however many sessions the run has.
        for item in chunk:
            item.call_properties = None

    for_each_open_chunk(batch, "upsert", settings.hubspot_batch_size, upsert_chunk, context.log)
    return batch


def renew_claims(chunk: list[CallSyncItem], shared: UpsertContext, context: OpExecutionContext) -> None:
    """Extend the lease before HubSpot writes, and drop the sessions another run has taken."""
    still_claimed = shared.postgres.renew_claims(
        shared.batch.run_id, [item.session.id for item in chunk], shared.settings.claim_lease_minutes
    )
    for item in chunk:
        if item.session.id not in still_claimed:
            item.claim_lost = True
            context.log.warning(
                "Call session %s: the claim expired and another run took it, so this run leaves it alone",
                item.session.id,
            )


# Companies


def find_primary_companies(items: list[CallSyncItem], shared: UpsertContext) -> None:
    """Read the contacts' primary companies (association type 1) in one associations batch read."""
    contact_ids = sorted({item.contact_id for item in items if item.contact_id})
    if not contact_ids:
        return
    companies = shared.client.batch_read_associations("contacts", "companies", contact_ids)
    for item in items:
        if not item.contact_id:
            continue
        for company_id, type_ids in companies.get(item.contact_id, {}).items():
            if hs.CONTACT_TO_PRIMARY_COMPANY in type_ids:
                item.company_id = company_id
                break


# CALLs


def build_calls(items: list[CallSyncItem], shared: UpsertContext) -> None:
    """Load the chunk's transcripts and build each CALL's properties and associations."""
    transcriptions = shared.postgres.load_transcriptions([item.session.id for item in items])
    for item in items:
        assert item.counterparty is not None, "enrich sets the counterparty of every open session"
        item.call_properties = build_call_properties(
            item.session,
            item.counterparty,
            build_body(transcriptions.get(item.session.id), item.session.transcription_status),
            item.owner_id,
            shared.settings.timezone,
            shared.settings.default_region,
        )
        item.call_associations = build_call_associations(item.contact_id, item.company_id, item.session.hubspot_deal_id)


def create_calls(items: list[CallSyncItem], shared: UpsertContext, context: OpExecutionContext) -> None:
    """Create each session's CALL unless it has one, without ever creating two.

    HubSpot has no idempotency key. A CALL id stored on the session is used first. A session whose create
    was sent before (its request time is stored) is looked up by `hs_call_external_id`. Because search
    lags behind creates, it is created again only once that request is older than the search lag.
    A session never sent needs no lookup: the request time is committed before any create is sent.
    """
    now = datetime.now(UTC)
    to_create = []
    sent_before = []
    for item in items:
        if item.session.hubspot_engagement_id:
            item.engagement_id = item.session.hubspot_engagement_id
            item.record("call_prefilled", hubspot_object_id=item.engagement_id)
        elif item.session.hubspot_call_requested_at is not None:
            sent_before.append(item)
        else:
            to_create.append(item)

    if sent_before:
        existing = search_calls([item.session.telavox_call_id for item in sent_before], shared.client)
        for item in sent_before:
            requested_at = item.session.hubspot_call_requested_at
            assert requested_at is not None
            call_ids = existing.get(item.session.telavox_call_id)
            if call_ids:
                item.engagement_id = call_ids[0]
                item.record(
                    "call_found_existing",
                    hubspot_object_id=item.engagement_id,
                    detail={"hs_call_external_id": item.session.telavox_call_id, "all_ids": call_ids},
                )
            elif requested_at + shared.search_lag > now:
                item.defer(
                    "call_create_unconfirmed",
                    f"a CALL create was sent at {requested_at.isoformat()} and search does not show it yet; "
                    f"looking again after HubSpot's search lag ({shared.settings.search_lag_seconds:g} s)",
                    requested_at + shared.search_lag,
                )
            else:
                to_create.append(item)

    if not to_create:
        return
    if shared.batch.dry_run:
        for item in to_create:
            log_dry_run_call(item, context)
        return

    still_claimed = shared.postgres.record_call_requests(
        shared.batch.run_id, [item.session.id for item in to_create], shared.settings.claim_lease_minutes
    )
    for item in to_create:
        if item.session.id not in still_claimed:
            item.claim_lost = True
            context.log.warning(
                "Call session %s: the claim was lost before the CALL create; not creating", item.session.id
            )
    send_call_creates([item for item in to_create if item.session.id in still_claimed], shared)


def send_call_creates(items: list[CallSyncItem], shared: UpsertContext) -> None:
    """Send one batch create for `items`; on a 400 for the whole batch, send them one by one."""
    if not items:
        return
    by_external_id = {item.session.telavox_call_id: item for item in items}
    inputs = [
        {
            "properties": item.call_properties,
            "associations": item.call_associations,
            "objectWriteTraceId": item.session.telavox_call_id,
        }
        for item in items
    ]
    try:
        result = shared.client.batch_create("calls", inputs)
    except HubSpotValidationError as error:
        if len(items) > 1:
            # Without the per-input errors of a 207 the culprit is unknown; alone, each input is judged alone.
            for item in items:
                send_call_creates([item], shared)
            return
        shared.postgres.clear_call_requests([items[0].session.id])
        items[0].fail("hubspot_call_rejected", str(error), retryable=False, correlation_id=error.correlation_id)
        return
    except HubSpotTransientError as error:
        if not error.may_have_applied:
            shared.postgres.clear_call_requests([item.session.id for item in items])
            raise
        retry_at = datetime.now(UTC) + shared.search_lag
        for item in items:
            item.fail(
                "hubspot_call_create_unconfirmed",
                f"{error}; the CALL may exist, so it is looked up again after the search lag",
                retryable=True,
                correlation_id=error.correlation_id,
                retry_at=retry_at,
            )
        return
    except HubSpotError:
        shared.postgres.clear_call_requests([item.session.id for item in items])
        raise

    created: dict[UUID, str] = {}
    for call in result.results:
        external_id = (call.get("properties") or {}).get(hs.CALL_EXTERNAL_ID_PROPERTY) or call.get("objectWriteTraceId")
        created_for = by_external_id.get(str(external_id))
        if created_for is not None and created_for.engagement_id is None:
            created_for.engagement_id = str(call["id"])
            created_for.call_created_now = True
            created_for.record("call_created", hubspot_object_id=created_for.engagement_id)
            created[created_for.session.id] = created_for.engagement_id
    shared.postgres.store_call_ids(created)

    waiting = {external_id: [item] for external_id, item in by_external_id.items() if item.engagement_id is None}
    forget_stale_contacts(result, waiting, shared)
    rejected = fail_batch_errors(result, "objectWriteTraceId", waiting, "hubspot_call_rejected")
    shared.postgres.clear_call_requests(
        [by_external_id[external_id].session.id for external_id in rejected if external_id in by_external_id]
    )
    for external_id, leftover in waiting.items():
        for item in leftover:
            item.fail(
                "hubspot_call_missing",
                f"HubSpot's batch create returned neither a result nor an error for {external_id}",
                retryable=True,
                retry_at=datetime.now(UTC) + shared.search_lag,
            )


def forget_stale_contacts(result: BatchResult, waiting: dict[str, list[CallSyncItem]], shared: UpsertContext) -> None:
    """Retry, with a fresh lookup, the rejected CALLs whose contact came from callsync's number map.

    A contact in the map may have been deleted or merged in HubSpot since; the CALL's association to it is
    then rejected. The number's map row is dropped and the session retried, so its next attempt searches.
    """
    for error in result.errors:
        for external_id in error.ids("objectWriteTraceId"):
            items = waiting.get(external_id, [])
            if not items or items[0].contact_source not in ("map", "run") or items[0].phone_number is None:
                continue
            item = waiting.pop(external_id)[0]
            e164 = item.phone_number.e164 if item.phone_number else ""
            shared.postgres.forget_contact_numbers(shared.portal, [e164])
            shared.contacts.contacts_by_number.pop(e164, None)
            shared.postgres.clear_call_requests([item.session.id])
            item.contact_id = None
            item.fail(
                "hubspot_call_rejected",
                f"HubSpot rejected the CALL: {error.message}. Its contact came from callsync's number map and may "
                f"have been deleted or merged, so {e164} is looked up again on the next attempt",
                retryable=True,
                correlation_id=error.correlation_id,
            )


def search_calls(external_ids: list[str], client: HubSpotClient) -> dict[str, list[str]]:
    """Return the CALL ids per external id, oldest (lowest id) first, matching the external id exactly."""
    expected_ids = set(external_ids)
    found: dict[str, list[str]] = defaultdict(list)
    for body in call_search_bodies(external_ids):
        for call in client.search("calls", body):
            external_id = (call.get("properties") or {}).get(hs.CALL_EXTERNAL_ID_PROPERTY)
            if external_id in expected_ids:
                found[external_id].append(str(call["id"]))
    return {key: sorted(set(ids), key=lambda call_id: (len(call_id), call_id)) for key, ids in found.items()}


def log_dry_run_call(item: CallSyncItem, context: OpExecutionContext) -> None:
    assert item.call_properties is not None
    preview = dict(item.call_properties)
    preview["hs_call_body"] = preview["hs_call_body"][:_DRY_RUN_BODY_PREVIEW]
    context.log.info(
        "Dry run: would create CALL for session %s: %s",
        item.session.id,
        json.dumps({"properties": preview, "associations": item.call_associations}, ensure_ascii=False),
    )
