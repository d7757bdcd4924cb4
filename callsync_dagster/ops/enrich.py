"""enrich: transcripts, the counterparty's number, the owner and the CALL body for each session."""

from dagster import OpExecutionContext, op

from callsync_dagster.core.call_body import build_call_body, parse_speaker_turns
from callsync_dagster.core.call_engagement import build_call_properties
from callsync_dagster.core.counterparty import CounterpartyProblem, find_counterparty
from callsync_dagster.core.models import Transcription
from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number
from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.ops.per_item import for_each_open_item
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings


@op(
    description="Load transcripts, pick and normalise the counterparty, apply the blocklist, map the owner, build the CALL."
)
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

    transcriptions = postgres.load_transcriptions([item.session.id for item in items])
    blocked, unusable = blocked_numbers_by_e164(postgres.load_blocked_numbers(), settings.default_region)
    if unusable:
        context.log.warning(
            "Ignoring %d blocked_numbers rows that are not valid numbers: %s",
            len(unusable),
            ", ".join(unusable[:10]),
        )
    client = hubspot.client

    def enrich_one(item: CallSyncItem) -> None:
        session = item.session

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

        item.transcription = transcriptions.get(session.id)
        item.call_properties = build_call_properties(
            session,
            counterparty,
            build_body(item.transcription, session.transcription_status),
            item.owner_id,
            settings.timezone,
            settings.default_region,
        )

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


def build_body(transcription: Transcription | None, transcription_status: str | None) -> str:
    """Build the CALL body, saying why when there is no transcript to show."""
    transcription = transcription or Transcription(source="none")
    turns = parse_speaker_turns(transcription.speaker_labels)
    has_text = bool(turns) or bool(transcription.full_text and transcription.full_text.strip())

    missing_note = None
    if not has_text:
        if transcription_status == "failed":
            missing_note = "No transcript: the transcription of this call failed."
        elif transcription_status == "completed":
            missing_note = "No transcript: the transcription finished but its text is empty."
        else:
            missing_note = (
                "No transcript: the transcription was not finished when this call was logged "
                f"(transcription status {transcription_status or 'unknown'})."
            )
    return build_call_body(transcription.summary, turns, transcription.full_text, missing_note)
