"""The legacy workflow's ops: ElevenLabs conversations to a HubSpot contact, deal, note and follow-up task.

The steps mirror the call workflow's (fetch, enrich, upsert, associate, write-back) and share its parts.
Those are the claims and leases, the contact lookup by phone number (ops/contact_resolution.py), the step
runners that keep one failure from failing the others (ops/per_item.py), the retry policy, and the HubSpot
client with its shared rate limits. What is new is the deal, the note and the task, each created at most once per conversation.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster import Config, Failure, MetadataValue, OpExecutionContext, Output, op
from pydantic import Field, field_validator

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.conversation_item import ConversationSyncBatch, ConversationSyncItem
from callsync_dagster.core.conversations import (
    ConversationSkip,
    DealSettings,
    SyncType,
    build_deal,
    build_note_properties,
    build_task_properties,
    contact_label,
    conversation_marker,
    deal_associations,
    find_contact_identity,
    is_positive_sentiment,
    marker_search_filter,
    new_contact_properties,
    note_associations,
    task_associations,
    text_has_marker,
)
from callsync_dagster.core.models import SyncLogEntry, SyncStatus
from callsync_dagster.core.retry_policy import retry_time
from callsync_dagster.ops.contact_resolution import ContactLookup, resolve_contacts
from callsync_dagster.ops.per_item import for_each_open_item
from callsync_dagster.resources.conversation_store import ConversationStore
from callsync_dagster.resources.hubspot import HubSpotClient, HubSpotResource
from callsync_dagster.resources.hubspot_errors import HubSpotError, HubSpotTransientError, existing_id_in
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

# The HubSpot object type of each kind the workflow creates.
_OBJECT_TYPES = {SyncType.DEAL: "deals", SyncType.NOTE: "notes", SyncType.TASK: "tasks"}


class ConversationFetchConfig(Config):
    """Run config of the conversation sync job; set under ops.fetch_conversations.config in the launchpad."""

    conversation_ids: list[str] = Field(
        default_factory=list,
        description="Sync exactly these conversations (conversations.conversation_id). Empty: claim due ones.",
    )
    max_batch_size: int = Field(default=50, ge=1, le=1000, description="Maximum conversations one run claims.")
    only_due: bool = Field(default=False, description="Claim the given ids only while they are due (the sensor).")
    dry_run: bool = Field(default=False, description="Claim and write nothing; log what would be created.")

    @field_validator("conversation_ids")
    @classmethod
    def _strip(cls, values: list[str]) -> list[str]:
        return [value.strip() for value in values if value.strip()]


@op(description="Claim up to max_batch_size conversations that are done and not yet synced (or the given ids).")
def fetch_conversations(
    context: OpExecutionContext, config: ConversationFetchConfig, postgres: PostgresResource, settings: CallSyncSettings
) -> ConversationSyncBatch:
    store = ConversationStore(postgres)
    if config.dry_run:
        conversations = (
            store.find_by_id(config.conversation_ids)
            if config.conversation_ids
            else store.find_due(config.max_batch_size)
        )
    elif config.conversation_ids:
        conversations = store.claim_by_id(
            context.run_id, config.conversation_ids, settings.claim_lease_minutes, config.only_due
        )
        missing = set(config.conversation_ids) - {conversation.conversation_id for conversation in conversations}
        for conversation_id in sorted(missing):
            context.log.warning(
                "Conversation %s was not claimed: it does not exist, is not done, is synced, is not due yet, or another "
                "run holds it",
                conversation_id,
            )
    else:
        conversations = store.claim_due(context.run_id, config.max_batch_size, settings.claim_lease_minutes)
    context.log.info("%s %d conversations", "Read" if config.dry_run else "Claimed", len(conversations))
    return ConversationSyncBatch(
        run_id=context.run_id,
        dry_run=config.dry_run,
        items=[ConversationSyncItem(conversation) for conversation in conversations],
    )


@op(
    description="Load each conversation's newest insights and find its contact details (external number, else "
    "an email or number the agent collected)."
)
def enrich_conversations(
    context: OpExecutionContext,
    batch: ConversationSyncBatch,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> ConversationSyncBatch:
    insights = ConversationStore(postgres).load_insights([item.conversation.conversation_id for item in batch.items])

    def enrich_one(item: ConversationSyncItem) -> None:
        # Conversations carry no portal id: they belong to the default portal.
        item.portal = hubspot.portal
        item.insights = insights.get(item.conversation.conversation_id)
        identity = find_contact_identity(item.conversation, settings.default_region)
        if isinstance(identity, ConversationSkip):
            if not item.conversation.hubspot_contact_id:
                item.skip(identity.code, identity.reason)
                return
        else:
            item.identity = identity
        if item.insights is None:
            # The analysis can land after the conversation is marked done. A positive one must not lose its task
            # because of that, so a conversation without insights waits as long as a call waits for its transcript.
            created_at = item.conversation.created_at or datetime.now(UTC)
            ready_at = created_at + timedelta(minutes=settings.transcript_wait_minutes)
            if ready_at > datetime.now(UTC):
                item.defer("insights_pending", "the conversation has no insights yet; waiting for them", ready_at)
                return
            item.record("insights_missing", detail={"conversation_id": item.conversation.conversation_id})

    for_each_open_item(batch, "enrich", enrich_one, context.log)
    return batch


@dataclass
class ConversationUpsert:
    """State that the conversations of one run share in upsert."""

    batch: ConversationSyncBatch
    client: HubSpotClient
    store: ConversationStore
    settings: CallSyncSettings
    contacts: ContactLookup
    deal_settings: DealSettings
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@op(
    description="Find or create the contact, then create the deal, the note and (when the sentiment is positive) "
    "the follow-up task, each at most once."
)
def upsert_conversations(
    context: OpExecutionContext,
    batch: ConversationSyncBatch,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> ConversationSyncBatch:
    client = hubspot.client
    deal_settings = DealSettings(
        pipeline=settings.deal_pipeline,
        default_stage=settings.deal_default_stage,
        **({"stage_map": settings.deal_stage_map} if settings.deal_stage_map else {}),
    )
    shared = ConversationUpsert(
        batch,
        client,
        ConversationStore(postgres),
        settings,
        ContactLookup(batch.run_id, batch.dry_run, client, postgres, settings, hubspot.portal),
        deal_settings,
    )

    def upsert_one(item: ConversationSyncItem) -> None:
        find_contact(item, shared)
        if item.is_done:
            return
        read_contact(item, shared)

        draft = build_deal(
            item.conversation,
            item.insights,
            item.contact_label or contact_label(None, item.identity),
            deal_settings,
            settings.timezone,
            item.owner_id,
        )
        if draft.stage.fell_back:
            item.record(
                "stage_fallback",
                detail={"insight_stage": draft.stage.insight_value, "stage": draft.stage.stage},
            )
        if (
            create_once(item, SyncType.DEAL, draft.properties, deal_associations(item.contact_id), shared, context)
            is None
        ):
            return

        note = build_note_properties(item.conversation, item.insights, item.owner_id)
        if (
            create_once(item, SyncType.NOTE, note, note_associations(item.contact_id, item.deal_id), shared, context)
            is None
        ):
            return

        sentiment = item.insights.sentiment if item.insights else None
        if is_positive_sentiment(sentiment):
            task = build_task_properties(
                item.conversation,
                item.insights,
                item.contact_label or contact_label(None, item.identity),
                shared.now,
                settings.timezone,
                item.owner_id,
            )
            if task is not None:
                associations = task_associations(item.contact_id, item.deal_id)
                if create_once(item, SyncType.TASK, task, associations, shared, context) is None:
                    return
        else:
            item.record("task_not_needed", detail={"sentiment": sentiment})

        # associate_conversations checks the objects this run did not create, then marks the item synced.

    for_each_open_item(batch, "upsert", upsert_one, context.log)
    return batch


def find_contact(item: ConversationSyncItem, shared: ConversationUpsert) -> None:
    """Give the conversation its contact, trying its contact details in order.

    The call's external number goes through the call workflow's lookup (number map, search, reserved
    create). Without it, a collected email comes before a collected number, because a number typed from
    speech is more often wrong.
    """
    identity = item.identity
    external = bool(identity and identity.lookups and identity.lookups[0].source == "external_number")
    if item.conversation.hubspot_contact_id or external or (identity and identity.phone and not identity.email):
        resolve_contacts([item], shared.contacts)
        return
    if identity is not None and identity.email and identity.phone:
        if find_contact_by_email(item, identity.email, shared, create=False):
            return
        resolve_contacts([item], shared.contacts)
        return
    assert identity is not None and identity.email, "enrich skips a conversation without contact details"
    find_contact_by_email(item, identity.email, shared, create=True)


def find_contact_by_email(item: ConversationSyncItem, email: str, shared: ConversationUpsert, *, create: bool) -> bool:
    """Find the contact with this email, or create it when `create`; return whether the item has a contact."""
    found = shared.client.search(
        "contacts",
        {
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
            "properties": ["email", "firstname", "lastname"],
            "limit": 10,
        },
    )
    matching = sorted(
        (
            str(contact["id"])
            for contact in found
            if str((contact.get("properties") or {}).get("email", "")).lower() == email
        ),
        key=lambda contact_id: (len(contact_id), contact_id),
    )
    if matching:
        item.contact_id = matching[0]
        item.record("contact_matched", hubspot_object_id=item.contact_id, detail={"email": email})
        return True
    if not create:
        return False
    if shared.batch.dry_run:
        item.record("contact_would_be_created", detail={"email": email})
        return True
    # HubSpot keeps emails unique, so a create repeated after a lost response gets a 409 naming the contact.
    properties = new_contact_properties(item.identity) if item.identity else {"email": email}
    created = shared.client.batch_create("contacts", [{"properties": properties, "objectWriteTraceId": email}])
    if created.results:
        item.contact_id = str(created.results[0]["id"])
        item.record("contact_created", hubspot_object_id=item.contact_id, detail={"email": email})
        return True
    error = created.errors[0]
    existing = existing_id_in(error.message)
    if existing:
        item.contact_id = existing
        item.record("contact_matched", hubspot_object_id=existing, detail={"email": email, "from": "409"})
        return True
    item.fail("hubspot_contact_rejected", f"HubSpot rejected the contact {email}: {error.message}", retryable=False)
    return False


def read_contact(item: ConversationSyncItem, shared: ConversationUpsert) -> None:
    """Read the contact's name and owner: the deal and task are named after the contact and go to its owner."""
    if item.contact_id is None:
        return
    result = shared.client.batch_read("contacts", [item.contact_id], ["firstname", "lastname", "hubspot_owner_id"])
    if not result.results:
        return
    properties = result.results[0].get("properties") or {}
    name = " ".join(part for part in (properties.get("firstname"), properties.get("lastname")) if part)
    item.contact_label = contact_label(name or None, item.identity)
    item.owner_id = properties.get("hubspot_owner_id") or None


def create_once(
    item: ConversationSyncItem,
    kind: SyncType,
    properties: dict[str, str],
    associations: list[dict],  # type: ignore[type-arg]
    shared: ConversationUpsert,
    context: OpExecutionContext,
) -> str | None:
    """Create the conversation's deal, note or task unless it exists; return its id, or None when the item ended.

    Each object carries a marker (core/conversations.py). The request time is committed before the create,
    and the id is stored the moment HubSpot returns it. A conversation whose request time is set and whose id
    is not was interrupted: its object is looked up by the marker, and created again only once the request
    is older than HubSpot's search lag.
    """
    conversation = item.conversation
    stored = getattr(conversation, f"hubspot_{kind.value}_id")
    if stored:
        item.set_object_id(kind, stored)
        item.adopted.add(kind)
        return str(stored)

    requested_at: datetime | None = getattr(conversation, f"hubspot_{kind.value}_requested_at")
    if requested_at is not None:
        found = find_by_marker(kind, conversation_marker(conversation.conversation_id, kind), shared.client)
        if found:
            item.set_object_id(kind, found)
            item.adopted.add(kind)
            if not shared.batch.dry_run:
                entry = SyncLogEntry(action=f"{kind.value}_found_existing", hubspot_object_id=found)
                shared.store.store_object_id(conversation, kind, found, entry, shared.batch.run_id)
                item.created.append(entry)
            return found
        lag = timedelta(seconds=shared.settings.search_lag_seconds)
        if requested_at + lag > datetime.now(UTC):
            item.defer(
                f"{kind.value}_create_unconfirmed",
                f"a {kind.value} create was sent at {requested_at.isoformat()} and search does not show it yet; "
                "looking again after HubSpot's search lag",
                requested_at + lag,
            )
            return None

    if shared.batch.dry_run:
        context.log.info("Dry run: would create a %s for conversation %s", kind.value, conversation.conversation_id)
        item.record(f"{kind.value}_would_be_created")
        # A stand-in id lets the dry run go on to report the objects that hang on this one.
        return "dry-run"

    if not shared.store.record_request(conversation.id, shared.batch.run_id, kind, shared.settings.claim_lease_minutes):
        item.claim_lost = True
        context.log.warning("%s: the claim was lost before the %s create; not creating", item.label, kind.value)
        return None
    marker = conversation_marker(conversation.conversation_id, kind)
    try:
        result = shared.client.batch_create(
            _OBJECT_TYPES[kind],
            [{"properties": properties, "associations": associations, "objectWriteTraceId": marker}],
        )
    except HubSpotTransientError as error:
        if error.may_have_applied:
            item.fail(
                f"hubspot_{kind.value}_create_unconfirmed",
                f"{error}; the {kind.value} may exist, so it is looked up again after the search lag",
                retryable=True,
                correlation_id=error.correlation_id,
                retry_at=datetime.now(UTC) + timedelta(seconds=shared.settings.search_lag_seconds),
            )
            return None
        shared.store.clear_request(conversation.id, kind)
        raise
    except HubSpotError:
        shared.store.clear_request(conversation.id, kind)
        raise

    if not result.results:
        shared.store.clear_request(conversation.id, kind)
        rejection = result.errors[0] if result.errors else None
        item.fail(
            f"hubspot_{kind.value}_rejected",
            f"HubSpot rejected the {kind.value}: {rejection.message if rejection else 'no result and no error'}",
            retryable=False,
            correlation_id=rejection.correlation_id if rejection else None,
        )
        return None
    object_id = str(result.results[0]["id"])
    # The id and its sync_history row are written together now, not at write-back, so neither is lost.
    entry = SyncLogEntry(action=f"{kind.value}_created", hubspot_object_id=object_id)
    shared.store.store_object_id(conversation, kind, object_id, entry, shared.batch.run_id)
    item.set_object_id(kind, object_id)
    item.created.append(entry)
    return object_id


def find_by_marker(kind: SyncType, marker: str, client: HubSpotClient) -> str | None:
    """Return the lowest id among objects whose marker property contains `marker` as a whole word."""
    search_filter = marker_search_filter(marker, kind)
    results = client.search(
        _OBJECT_TYPES[kind],
        {"filterGroups": [{"filters": [search_filter]}], "properties": [search_filter["propertyName"]], "limit": 10},
    )
    matching = [
        str(result["id"])
        for result in results
        if text_has_marker((result.get("properties") or {}).get(search_filter["propertyName"]), marker)
    ]
    return min(matching, key=lambda object_id: (len(object_id), object_id)) if matching else None


# The associations each object must have: (target object type, HubSpot-defined type id).
_EXPECTED_ASSOCIATIONS = {
    SyncType.DEAL: (("contacts", hs.DEAL_TO_CONTACT),),
    SyncType.NOTE: (("contacts", hs.NOTE_TO_CONTACT), ("deals", hs.NOTE_TO_DEAL)),
    SyncType.TASK: (("contacts", hs.TASK_TO_CONTACT), ("deals", hs.TASK_TO_DEAL)),
}


@op(
    description="Check that the deals, notes and tasks this run found rather than created hang on the contact and "
    "deal, add what is missing, and mark the conversations synced."
)
def associate_conversations(
    context: OpExecutionContext, batch: ConversationSyncBatch, hubspot: HubSpotResource
) -> ConversationSyncBatch:
    client = hubspot.client

    def associate_one(item: ConversationSyncItem) -> None:
        # Objects created in this run got their associations inline; one found from an earlier attempt may
        # predate a contact or deal set since.
        targets = {"contacts": item.contact_id, "deals": item.deal_id}
        for kind in sorted(item.adopted):
            object_id = item.object_id(kind)
            if not object_id or batch.dry_run:
                continue
            for to_type, type_id in _EXPECTED_ASSOCIATIONS[kind]:
                target = targets[to_type]
                if not target:
                    continue
                existing = client.batch_read_associations(_OBJECT_TYPES[kind], to_type, [object_id])
                if target in existing.get(object_id, {}):
                    continue
                rejected = client.batch_create_associations(
                    _OBJECT_TYPES[kind], to_type, type_id, [(object_id, target)]
                )
                if rejected:
                    item.fail(
                        f"hubspot_{kind.value}_association_rejected",
                        f"HubSpot rejected the association of {kind.value} {object_id} to {to_type} {target}: "
                        f"{rejected[0][2].message}",
                        retryable=False,
                        correlation_id=rejected[0][2].correlation_id,
                    )
                    return
                item.record(f"{kind.value}_association_added", hubspot_object_id=target, detail={"to": to_type})
        item.succeed()

    for_each_open_item(batch, "associate", associate_one, context.log)
    return batch


@op(description="Write each conversation's status and its sync_history rows; end with a summary of the run.")
def write_back_conversations(
    context: OpExecutionContext, batch: ConversationSyncBatch, postgres: PostgresResource, settings: CallSyncSettings
) -> Output[dict[str, int]]:
    store = ConversationStore(postgres)
    now = datetime.now(UTC)
    for item in batch.items:
        if item.claim_lost:
            # Another run has the conversation now, but what this run did still goes into its audit trail.
            if not batch.dry_run:
                store.insert_history(item.conversation, batch.run_id, item.log)
            continue
        if item.outcome is None:
            item.fail("internal", "no step decided this conversation's outcome", retryable=True)
        assert item.outcome is not None
        retry_at = retry_time(
            item.outcome,
            item.conversation.sync_attempts,
            now,
            settings.max_attempts,
            settings.retry_initial_delay_minutes,
            settings.retry_max_delay_minutes,
        )
        if item.outcome.status is not SyncStatus.SYNCED:
            context.log.info("%s %s: %s", item.label, item.outcome.status.value, item.outcome.reason)
        if not batch.dry_run and not store.record_outcome(
            item.conversation, batch.run_id, item.outcome, item.log, retry_at
        ):
            context.log.warning(
                "%s: the claim expired and another run took it; its outcome was not written", item.label
            )

    counts = {
        status.value: sum(1 for item in batch.items if item.outcome and item.outcome.status is status)
        for status in (SyncStatus.SYNCED, SyncStatus.SKIPPED, SyncStatus.FAILED)
    }
    created = {
        kind.value: sum(1 for item in batch.items for entry in item.created if entry.action == f"{kind.value}_created")
        for kind in (SyncType.DEAL, SyncType.NOTE, SyncType.TASK)
    }
    summary = {"conversations": len(batch.items), **counts, **{f"{kind}s_created": n for kind, n in created.items()}}
    context.log.info("Conversation sync summary: %s", " ".join(f"{name}={value}" for name, value in summary.items()))
    if batch.stop_reason:
        raise Failure(description=f"HubSpot rejected the credentials, so the run stopped: {batch.stop_reason}")
    return Output(summary, metadata={name: MetadataValue.int(value) for name, value in summary.items()})
