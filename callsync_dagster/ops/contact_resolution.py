"""Find or create the HubSpot contact of each phone number, once per number, for any workflow.

The call workflow's upsert and the conversation workflow's upsert both use this. A number goes through
callsync's number map first, so a number seen before costs no request. Then comes one search for many
numbers, confirmed on the client, and one batch create under a reservation in the map. So one number gets
one contact, even across concurrent runs and within HubSpot's search lag.
"""

from collections import defaultdict
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from callsync_dagster.core.contacts import choose_contact, new_contact_properties
from callsync_dagster.core.hubspot_search import contact_search_bodies
from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number
from callsync_dagster.resources.hubspot import BatchResult, HubSpotClient
from callsync_dagster.resources.hubspot_errors import HubSpotError, HubSpotTransientError, HubSpotValidationError
from callsync_dagster.resources.postgres import ContactNumber, PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

# A reservation is stamped before the create waits for the rate limiter (up to 120 s), retries a rejected
# request and waits for the response (30 s). Another run takes it over only after this much more than the search lag, so a
# create still on its way is never repeated.
IN_FLIGHT_MARGIN_SECONDS = 300.0

# assign(number, contact id, where it came from) gives every waiting item of the number its contact.
Assign = Callable[[str, str, str], None]


class Failable(Protocol):
    """An item of work that can be failed with a reason, as a call session or a conversation is."""

    def fail(
        self,
        reason_code: str,
        message: str,
        *,
        retryable: bool,
        correlation_id: str | None = None,
        charge_attempt: bool = True,
        retry_at: datetime | None = None,
    ) -> None: ...


class ContactSeeker(Failable, Protocol):
    """An item that needs the contact of one phone number, unless its contact is already known."""

    contact_id: str | None
    # The source of contact_id: prefilled, map, run, search or created.
    contact_source: str | None

    @property
    def prefilled_contact_id(self) -> str | None: ...

    @property
    def phone_number(self) -> PhoneNumber | None: ...

    def record(self, action: str, **details: Any) -> None: ...

    def skip(self, reason_code: str, reason: str) -> None: ...

    def defer(self, reason_code: str, message: str, retry_at: datetime, correlation_id: str | None = None) -> None: ...


@dataclass
class ContactLookup:
    """State that the contact lookups of one run and portal share."""

    run_id: str
    dry_run: bool
    client: HubSpotClient
    postgres: PostgresResource
    settings: CallSyncSettings
    portal: str
    # Contacts found or created in this run, by E.164 number: later chunks need no lookup for them.
    contacts_by_number: dict[str, str] = field(default_factory=dict)

    @property
    def search_lag(self) -> timedelta:
        return timedelta(seconds=self.settings.search_lag_seconds)

    @property
    def takeover_after(self) -> timedelta:
        """How old another run's reservation must be before this run may create the contact itself."""
        return self.search_lag + timedelta(seconds=IN_FLIGHT_MARGIN_SECONDS)


def resolve_contacts(items: Sequence[ContactSeeker], shared: ContactLookup) -> None:
    """Give every session its contact: prefilled, known from the map, found by search, or created."""
    by_number: dict[str, list[ContactSeeker]] = defaultdict(list)
    numbers: dict[str, PhoneNumber] = {}
    for item in items:
        if item.prefilled_contact_id:
            item.contact_id = item.prefilled_contact_id
            item.record("contact_prefilled", hubspot_object_id=item.contact_id)
            continue
        number = item.phone_number
        assert number is not None, "enrich skips an item without a usable number unless its contact is prefilled"
        numbers[number.e164] = number
        by_number[number.e164].append(item)

    def assign(e164: str, contact_id: str, source: str) -> None:
        shared.contacts_by_number[e164] = contact_id
        for item in by_number.pop(e164, []):
            item.contact_id = contact_id
            item.contact_source = source
            action = "contact_created" if source == "created" else "contact_matched"
            item.record(action, hubspot_object_id=contact_id, detail={"phone": e164, "from": source})

    for e164 in [e164 for e164 in by_number if e164 in shared.contacts_by_number]:
        assign(e164, shared.contacts_by_number[e164], "run")
    if not by_number:
        return

    # 1. The map of numbers callsync has seen: no HubSpot request for a known number.
    mapped = shared.postgres.find_contact_numbers(shared.portal, list(by_number))
    for e164, row in mapped.items():
        if row.state == "known" and row.contact_id:
            assign(e164, row.contact_id, "map")
    defer_creates_in_flight(by_number, mapped, shared)
    if not by_number:
        return

    # 2. Search HubSpot for the rest, then confirm every hit on the client.
    found = search_contacts([numbers[e164] for e164 in by_number], shared)
    if not shared.dry_run:
        shared.postgres.remember_contacts(shared.portal, {e164: match[0] for e164, match in found.items()})
    for e164, (contact_id, ambiguous_ids) in found.items():
        if ambiguous_ids:
            for item in by_number.get(e164, []):
                item.record(
                    "contact_ambiguous",
                    hubspot_object_id=contact_id,
                    detail={"phone": e164, "candidates": list(ambiguous_ids), "rule": "lowest id wins"},
                )
        assign(e164, contact_id, "search")
    if not by_number:
        return

    # 3. No contact has these numbers.
    if shared.settings.contact_policy == "skip":
        for e164, waiting in by_number.items():
            for item in waiting:
                item.skip(
                    "no_contact",
                    f"no HubSpot contact has the number {e164} and contact_policy is 'skip'; "
                    "create the contact in HubSpot or set contact_policy to 'create'",
                )
        return
    if shared.dry_run:
        for e164, waiting in by_number.items():
            for item in waiting:
                item.record("contact_would_be_created", detail={"properties": new_contact_properties(numbers[e164])})
        return
    create_contacts(by_number, numbers, shared, assign)

    # A number can still be open only after a race with another run over a stale create; the next
    # attempt finds the map settled.
    for e164, waiting in by_number.items():
        for item in waiting:
            item.defer(
                "contact_unresolved",
                f"another run took over the contact create of {e164} during this run",
                datetime.now(UTC) + timedelta(minutes=1),
            )


def defer_creates_in_flight(
    by_number: dict[str, list[ContactSeeker]], mapped: dict[str, ContactNumber], shared: ContactLookup
) -> None:
    """Put off the sessions whose number has a contact create in flight, sent within the search lag.

    Searching could not show that contact yet, and creating one would make a duplicate. The create may be
    another run's, or an earlier chunk's of this run whose response was lost.
    """
    now = datetime.now(UTC)
    for e164, row in mapped.items():
        if row.state != "creating" or e164 not in by_number:
            continue
        retry_at = (row.requested_at or now) + shared.takeover_after
        if retry_at <= now:
            continue  # that run died; the search decides
        for item in by_number.pop(e164):
            item.defer(
                "contact_create_in_flight",
                f"run {row.run_id} sent a create for the contact of {e164}; trying again after HubSpot's search lag",
                retry_at,
            )


def search_contacts(numbers: list[PhoneNumber], shared: ContactLookup) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Search the numbers' contacts; return {E.164: (chosen contact id, all confirmed ids if several)}.

    HubSpot's calculated phone properties have undocumented normalisation, so a hit counts only when its
    `phone` or `mobilephone` normalises to the number searched.
    """
    searched = {number.e164 for number in numbers}
    confirmed: dict[str, list[str]] = defaultdict(list)
    for body in contact_search_bodies(
        [number.national_significant_number for number in numbers], shared.settings.contact_search
    ):
        for contact in shared.client.search("contacts", body):
            properties = contact.get("properties") or {}
            stored_numbers = set()
            for name in ("phone", "mobilephone"):
                stored = normalize_phone_number(properties.get(name), shared.settings.default_region)
                if isinstance(stored, PhoneNumber) and stored.e164 in searched:
                    stored_numbers.add(stored.e164)
            for e164 in stored_numbers:
                confirmed[e164].append(str(contact["id"]))

    found = {}
    for e164, contact_ids in confirmed.items():
        match = choose_contact(contact_ids)
        if match is not None:
            found[e164] = (match.contact_id, match.ambiguous_ids)
    return found


def create_contacts(
    by_number: dict[str, list[ContactSeeker]],
    numbers: dict[str, PhoneNumber],
    shared: ContactLookup,
    assign: Assign,
) -> None:
    """Create one contact per unknown number in one batch request, reserving each number first."""
    run_id = shared.run_id
    reserved = shared.postgres.reserve_contact_numbers(
        shared.portal, list(by_number), run_id, shared.takeover_after.total_seconds()
    )

    # A number not reserved was taken by another run since the lookup: use its contact, or wait for it.
    reserved_elsewhere = [e164 for e164 in by_number if e164 not in reserved]
    if reserved_elsewhere:
        rows = shared.postgres.find_contact_numbers(shared.portal, reserved_elsewhere)
        for e164 in reserved_elsewhere:
            row = rows.get(e164)
            if row is not None and row.state == "known" and row.contact_id:
                assign(e164, row.contact_id, "map")
        defer_creates_in_flight(by_number, rows, shared)
    to_create = [e164 for e164 in by_number if e164 in reserved]
    if not to_create:
        return

    send_contact_creates(to_create, by_number, numbers, shared, assign)


def send_contact_creates(
    to_create: list[str],
    by_number: dict[str, list[ContactSeeker]],
    numbers: dict[str, PhoneNumber],
    shared: ContactLookup,
    assign: Assign,
) -> None:
    """Send one batch create for the reserved numbers; on a 400 for the whole batch, send them one by one."""
    run_id = shared.run_id
    inputs = [{"properties": new_contact_properties(numbers[e164]), "objectWriteTraceId": e164} for e164 in to_create]
    try:
        result = shared.client.batch_create("contacts", inputs)
    except HubSpotValidationError as error:
        if len(to_create) > 1:
            # Without the per-input errors of a 207 the culprit is unknown; alone, each number is judged alone.
            for e164 in to_create:
                send_contact_creates([e164], by_number, numbers, shared, assign)
            return
        shared.postgres.release_contact_numbers(shared.portal, to_create, run_id)
        for item in by_number.pop(to_create[0], []):
            item.fail("hubspot_contact_rejected", str(error), retryable=False, correlation_id=error.correlation_id)
        return
    except HubSpotTransientError as error:
        if not error.may_have_applied:
            shared.postgres.release_contact_numbers(shared.portal, to_create, run_id)
            raise
        # The contacts may exist. The reservations stay, so no run creates them again before the search
        # lag has passed and a search can show them.
        retry_at = datetime.now(UTC) + shared.takeover_after
        for e164 in to_create:
            for item in by_number.pop(e164, []):
                item.fail(
                    "hubspot_contact_create_unconfirmed",
                    f"{error}; the contact of {e164} may exist, so it is looked up again after the search lag",
                    retryable=True,
                    correlation_id=error.correlation_id,
                    retry_at=retry_at,
                )
        return
    except HubSpotError:
        # Anything else was rejected before it was applied.
        shared.postgres.release_contact_numbers(shared.portal, to_create, run_id)
        raise

    created = {}
    for contact in result.results:
        e164 = str(contact.get("objectWriteTraceId") or (contact.get("properties") or {}).get("phone"))
        if e164 in to_create:
            created[e164] = str(contact["id"])
    shared.postgres.remember_contacts(shared.portal, created)
    for e164, contact_id in created.items():
        assign(e164, contact_id, "created")

    rejected = fail_batch_errors(result, "objectWriteTraceId", by_number, "hubspot_contact_rejected")
    shared.postgres.release_contact_numbers(shared.portal, rejected, run_id)
    for e164 in [e164 for e164 in to_create if e164 in by_number]:
        for item in by_number.pop(e164):
            item.fail(
                "hubspot_contact_missing",
                f"HubSpot's batch create returned neither a result nor an error for {e164}",
                retryable=True,
            )


FailableItem = TypeVar("FailableItem", bound=Failable)


def fail_batch_errors(
    result: BatchResult, key: str, items_by_key: MutableMapping[str, list[FailableItem]], reason_code: str
) -> list[str]:
    """Fail the items that a 207's errors name by `key`, removing them from `items_by_key`; return the keys."""
    failed = []
    for error in result.errors:
        for value in error.ids(key):
            for item in items_by_key.pop(value, []):
                item.fail(
                    reason_code,
                    f"HubSpot rejected the create: {error.message} (category {error.category})",
                    retryable=False,
                    correlation_id=error.correlation_id,
                )
            failed.append(value)
    return failed
