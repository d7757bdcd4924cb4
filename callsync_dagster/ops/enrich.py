"""enrich: the counterparty's number, the blocklist and the owner of each session; the CALL body builder."""

from dagster import OpExecutionContext, op

from callsync_dagster.core.counterparty import CounterpartyProblem, find_counterparty
from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number
from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.ops.per_item import for_each_open_item
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings


@op(description="Pick and normalise the counterparty, apply the blocklist, map the agent to a HubSpot owner.")
def enrich(
    context: OpExecutionContext,
    batch: CallSyncBatch,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> CallSyncBatch:
    items = batch.open_items()
    if not items:
        return batch

    blocked, unusable = blocked_numbers_by_e164(postgres.load_blocked_numbers(), settings.default_region)
    if unusable:
        context.log.warning(
            "Ignoring %d blocked_numbers rows that are not valid numbers: %s",
            len(unusable),
            ", ".join(unusable[:10]),
        )

    def enrich_one(item: CallSyncItem) -> None:
        session = item.session

        item.portal = hubspot.portal_of(session.hubspot_portal_id)
        client = hubspot.client_for(item.portal)
        if client is None:
            item.skip("no_portal_token", hubspot.missing_token_reason(item.portal))
            return

        counterparty = find_counterparty(
            session.direction,
            session.from_number,
            session.to_number,
            settings.default_region,
            has_prefilled_contact=bool(session.hubspot_contact_id),
        )
        if isinstance(counterparty, CounterpartyProblem):
            item.skip(counterparty.code, counterparty.reason)
            return
        item.counterparty = counterparty
        if counterparty.direction_inferred_from:
            item.record(
                "direction_inferred",
                detail={
                    "direction": counterparty.direction.value,
                    "because": counterparty.direction_inferred_from,
                },
            )

        if counterparty.number is None:
            item.record("counterparty_number_unusable", detail={"raw_number": counterparty.raw_number})
        elif counterparty.number.e164 in blocked:
            reason = (
                f"blocked number {counterparty.number.e164}: {blocked[counterparty.number.e164] or 'no reason given'}"
            )
            item.skip("blocked_number", reason)
            return

        if session.agent_user_id and "@" in session.agent_user_id:
            item.owner_id = client.find_owner_id_by_email(session.agent_user_id)
        if item.owner_id is None:
            item.record("owner_unmapped", detail={"agent_user_id": session.agent_user_id})

    for_each_open_item(batch, "enrich", enrich_one, context.log)
    return batch


def blocked_numbers_by_e164(
    rows: list[tuple[str, str | None]], default_region: str
) -> tuple[dict[str, str | None], list[str]]:
    """Index the blocklist by E.164, so a number blocked as '070-123 45 67' also blocks '+46701234567'.

    Returns the index and the stored values that are not valid numbers.
    """
    blocked = {}
    unusable = []
    for raw, reason in rows:
        number = normalize_phone_number(raw, default_region)
        if isinstance(number, PhoneNumber):
            blocked[number.e164] = reason
        else:
            unusable.append(raw)
    return blocked, unusable
