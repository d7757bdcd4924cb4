"""The legacy workflow's rules: an ElevenLabs conversation and its insights become a HubSpot deal, note and task.

The application stores each voice-agent conversation in `conversations`, with the ElevenLabs post-call payload
in `metadata` and `transcript`, and its AI insights in `insights`. These functions read those rows and build
the HubSpot properties and associations. They do no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from html import escape
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.call_body import speaker_display_name
from callsync_dagster.core.call_engagement import format_hubspot_timestamp
from callsync_dagster.core.phone import PhoneNumber, PhoneProblem, normalize_phone_number

# The status of a conversation whose call has ended and whose post-call analysis is stored. Only these
# conversations are synced, because before that the transcript and insights are incomplete.
# NOTE: the status values the application stores are not documented. `done` is assumed from ElevenLabs'
# post-call payloads and should be checked against a real deployment's rows.
CONVERSATION_STATUS_DONE = "done"

SENTIMENT_POSITIVE = "positive"

# The values callsync writes to sync_history.status. Migration 0005 reads `success` in the older
# worker's rows as well.
SYNC_HISTORY_SUCCESS = "success"
SYNC_HISTORY_FAILED = "failed"


class SyncType(StrEnum):
    """The HubSpot object a `sync_history` row is about, and the object kinds that carry a marker."""

    CONTACT = "contact"
    DEAL = "deal"
    NOTE = "note"
    TASK = "task"


# ---------------------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------------------


class Conversation(BaseModel):
    """One row of `conversations` with callsync's sync state, as far as callsync reads it."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    conversation_id: str
    agent_id: str | None = None
    user_id: UUID | None = None
    status: str | None = None
    # JSON text in the original schema and jsonb in some deployments. parse_transcript reads both.
    transcript: Any = None
    summary: str | None = None
    # The ElevenLabs post-call payload, its `data` object or its `metadata` object, as JSON or JSON text.
    metadata: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    hubspot_contact_id: str | None = None
    hubspot_deal_id: str | None = None
    hubspot_note_id: str | None = None
    hubspot_task_id: str | None = None
    # When callsync last sent the create of each object (set before sending).
    hubspot_deal_requested_at: datetime | None = None
    hubspot_note_requested_at: datetime | None = None
    hubspot_task_requested_at: datetime | None = None
    sync_attempts: int = 0


class Insights(BaseModel):
    """The newest `insights` row of a conversation."""

    model_config = ConfigDict(frozen=True)

    conversation_id: str | None = None
    # `positive`, `neutral` or `negative` in the original schema. Other values occur and are kept as given.
    sentiment: str | None = None
    key_points: tuple[str, ...] = ()
    deal_stage: str | None = None
    competitor_mentions: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    created_at: datetime | None = None

    @field_validator("key_points", "competitor_mentions", "next_steps", mode="before")
    @classmethod
    def _clean_items(cls, value: Any) -> tuple[str, ...]:
        """Accept a null array, a list, its JSON text or a single string, and drop null and blank items."""
        if value is None:
            return ()
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            value = parsed if isinstance(parsed, list) else [value]
        return tuple(str(item).strip() for item in value if item is not None and str(item).strip())


def is_ready_to_sync(conversation: Conversation) -> bool:
    """Return whether the conversation has ended and its analysis is finished."""
    return conversation.status == CONVERSATION_STATUS_DONE


def is_positive_sentiment(sentiment: str | None) -> bool:
    """Return whether the sentiment is `positive`, in any case. Unknown values are not positive."""
    return (sentiment or "").strip().lower() == SENTIMENT_POSITIVE


# ---------------------------------------------------------------------------------------------------------------
# The ElevenLabs payload
# ---------------------------------------------------------------------------------------------------------------


def _as_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _as_number(value: Any) -> float | None:
    """Read a JSON number or a string that contains one. Anything else, booleans included, gives None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _payload_value(metadata: Any, key: str) -> Any:
    """Find `key` in the stored payload, whichever part of it the application kept.

    Applications store the whole webhook body (`{"type", "data": {...}}`), its `data` object, or only
    ElevenLabs' `metadata` object with `analysis` beside it, so every layout is searched.
    """
    root = _as_mapping(metadata)
    data = _as_mapping(root.get("data"))
    containers = (root, _as_mapping(root.get("metadata")), data, _as_mapping(data.get("metadata")))
    for container in containers:
        value = container.get(key)
        if value is not None:
            return value
    return None


def phone_call_details(conversation: Conversation) -> dict[str, Any]:
    """Return `metadata.phone_call`: direction, agent_number and external_number, or {} for a web call."""
    return _as_mapping(_payload_value(conversation.metadata, "phone_call"))


def analysis(conversation: Conversation) -> dict[str, Any]:
    """Return the payload's `analysis` object, or {} when the application did not store it."""
    return _as_mapping(_payload_value(conversation.metadata, "analysis"))


def conversation_started_at(conversation: Conversation) -> datetime | None:
    """Return when the conversation started: `metadata.start_time_unix_secs`, else the row's `created_at`."""
    started = _as_number(_payload_value(conversation.metadata, "start_time_unix_secs"))
    if started is not None:
        return datetime.fromtimestamp(started, UTC)
    return conversation.created_at


def conversation_ended_at(conversation: Conversation) -> datetime | None:
    """Return the start plus `metadata.call_duration_secs`, or the start when the duration is missing."""
    started = conversation_started_at(conversation)
    duration = _as_number(_payload_value(conversation.metadata, "call_duration_secs"))
    if started is None or duration is None:
        return started
    return started + timedelta(seconds=max(duration, 0))


def conversation_summary(conversation: Conversation) -> str | None:
    """Return the row's `summary`, else the payload's `analysis.transcript_summary`."""
    for candidate in (conversation.summary, analysis(conversation).get("transcript_summary")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


_MAX_TOPIC_LENGTH = 150


def conversation_topic(conversation: Conversation, timezone: str) -> str:
    """Return `analysis.call_summary_title`, else the local date of the conversation."""
    title = analysis(conversation).get("call_summary_title")
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())[:_MAX_TOPIC_LENGTH]

    started = conversation_started_at(conversation)
    if started is None:
        return "ElevenLabs conversation"
    local_date = started.astimezone(ZoneInfo(timezone)).date().isoformat()
    return f"ElevenLabs conversation on {local_date}"


# ---------------------------------------------------------------------------------------------------------------
# Transcript
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationTurn:
    """One turn of the transcript. `role` is `agent`, `user`, or None for a line of plain text."""

    role: str | None
    message: str
    time_in_call_secs: float | None = None


def parse_transcript(raw: Any) -> list[ConversationTurn]:
    """Read the transcript's turns from a list of `{role, message, time_in_call_secs}` or its JSON text.

    Turns whose message is null or blank (ElevenLabs' tool-call turns) are skipped. A list wrapped in an object
    under `transcript` or `turns` is unwrapped. Text that is not JSON becomes one turn without a role per
    line, so that a long plain transcript can still be cut between lines.
    """
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text else None
        except ValueError:
            raw = text
        if isinstance(raw, str):
            return [ConversationTurn(None, line.strip()) for line in raw.splitlines() if line.strip()]

    if isinstance(raw, dict):
        raw = next((raw[key] for key in ("transcript", "turns") if isinstance(raw.get(key), list)), None)
    if not isinstance(raw, list):
        return []

    turns = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        message = item.get("message")
        if message is None or not str(message).strip():
            continue
        role = item.get("role")
        turns.append(
            ConversationTurn(
                role=str(role).strip() if role is not None and str(role).strip() else None,
                message=str(message).strip(),
                time_in_call_secs=_as_number(item.get("time_in_call_secs")),
            )
        )
    return turns


# ---------------------------------------------------------------------------------------------------------------
# Contact
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactLookup:
    """One way to find the contact: an E.164 number or a lower-case email, and where it came from."""

    kind: Literal["phone", "email"]
    value: str
    # `external_number`, or `data_collection_results.<key>` for a value the agent collected.
    source: str


@dataclass(frozen=True)
class ContactIdentity:
    """The conversation's contact details, as lookups in the order to try them."""

    lookups: tuple[ContactLookup, ...]
    # The first usable number, for a contact's `phone` and the deal name.
    phone: PhoneNumber | None = None
    email: str | None = None
    # Why `metadata.phone_call.external_number` was not used when it was present, for the sync log.
    external_number_problem: PhoneProblem | None = None


@dataclass(frozen=True)
class ConversationSkip:
    """The reason a conversation is skipped, which becomes its `sync_reason_code` and `sync_reason`."""

    code: str
    reason: str


_EMAIL = re.compile(r"[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[A-Za-z]{2,}")
# A collected value is read as a phone number only when it contains nothing but the characters of a
# written number.
_PHONE_TEXT = re.compile(r"\+?[\d\s()\-]+")
_EMAIL_KEY_HINTS = ("mail", "e-post", "epost", "mejl")
# "nummer" and "number" alone are no hint, because keys such as kundnummer (customer number) and order_number
# hold other numbers.
_PHONE_KEY_HINTS = ("phone", "telefon", "mobil")


def find_contact_identity(conversation: Conversation, default_region: str = "SE") -> ContactIdentity | ConversationSkip:
    """Collect the contact's identifiers, or return the reason the conversation cannot be matched.

    The order of the lookups is:
    1. `metadata.phone_call.external_number`, the customer's side of the call. For an outbound call the caller
       id (`agent_number`) is the agent's own number, so `agent_number` is never used.
    2. An email the agent collected in `analysis.data_collection_results`. An email is tried before a collected
       number because it is exact, while a number typed from speech is more often wrong.
    3. A number the agent collected, normalised with `default_region` because such numbers are often national.

    Collected values are recognised by their form, because the keys differ from agent to agent. Keys whose
    name suggests an email or a phone number are read first, then the rest in key order. A conversation whose
    `hubspot_contact_id` is already filled is never skipped, even with no identifier.
    """
    lookups: list[ContactLookup] = []
    phone: PhoneNumber | None = None
    external_problem: PhoneProblem | None = None

    raw_external = phone_call_details(conversation).get("external_number")
    if raw_external is not None:
        external = normalize_phone_number(str(raw_external), default_region)
        if isinstance(external, PhoneNumber):
            phone = external
            lookups.append(ContactLookup("phone", external.e164, "external_number"))
        else:
            external_problem = external

    collected = _collected_values(conversation)
    email = _first_collected_email(collected)
    if email is not None:
        lookups.append(ContactLookup("email", email[1], f"data_collection_results.{email[0]}"))

    if phone is None:
        collected_phone = _first_collected_phone(collected, default_region)
        if collected_phone is not None:
            phone = collected_phone[1]
            lookups.append(ContactLookup("phone", phone.e164, f"data_collection_results.{collected_phone[0]}"))

    if not lookups and not conversation.hubspot_contact_id:
        return _no_identity_skip(external_problem)
    return ContactIdentity(
        lookups=tuple(lookups),
        phone=phone,
        email=email[1] if email else None,
        external_number_problem=external_problem,
    )


def _no_identity_skip(external_problem: PhoneProblem | None) -> ConversationSkip:
    if external_problem is None:
        detail = "the call has no external number"
    elif external_problem.kind == "hidden":
        detail = f"the external number is withheld ({external_problem.raw!r})"
    else:
        detail = f"the external number {external_problem.raw!r} is not a valid phone number"
    return ConversationSkip(
        code="no_contact_details",
        reason=(
            f"No contact details: {detail}, and the agent collected no email or phone number. "
            "Set hubspot_contact_id on the conversation to sync it."
        ),
    )


def _collected_values(conversation: Conversation) -> list[tuple[str, str]]:
    """Return (key, value) of each non-empty collected value, hinted keys first, then in key order."""
    results = _as_mapping(analysis(conversation).get("data_collection_results"))
    values = []
    for key, entry in results.items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if value is None or isinstance(value, bool | dict | list):
            continue
        text = str(value).strip()
        if text:
            values.append((str(key), text))

    hints = _EMAIL_KEY_HINTS + _PHONE_KEY_HINTS
    return sorted(values, key=lambda item: (not any(hint in item[0].lower() for hint in hints), item[0]))


def _first_collected_email(collected: list[tuple[str, str]]) -> tuple[str, str] | None:
    for key, text in collected:
        candidate = text.removeprefix("mailto:").strip()
        if _EMAIL.fullmatch(candidate):
            return key, candidate.lower()
    return None


def _first_collected_phone(collected: list[tuple[str, str]], default_region: str) -> tuple[str, PhoneNumber] | None:
    for key, text in collected:
        hinted = any(hint in key.lower() for hint in _PHONE_KEY_HINTS)
        if not _PHONE_TEXT.fullmatch(text):
            continue
        # Under a key that does not name a phone number, the value must also start with "+" or a trunk 0,
        # because a date such as 2026-03-30 is otherwise a valid Swedish number.
        if not hinted and not text.startswith(("+", "0")):
            continue
        digit_count = sum(character.isdigit() for character in text)
        if not 7 <= digit_count <= 15:
            continue
        number = normalize_phone_number(text, default_region)
        if isinstance(number, PhoneNumber):
            return key, number
    return None


def new_contact_properties(identity: ContactIdentity) -> dict[str, str]:
    """Properties of a contact created for the conversation.

    HubSpot needs an email, a first name or a last name on a contact. Without an email, the formatted number
    is the first name, as in the call workflow.
    """
    properties: dict[str, str] = {}
    if identity.email:
        properties["email"] = identity.email
    if identity.phone:
        properties["phone"] = identity.phone.e164
        if not identity.email:
            properties["firstname"] = identity.phone.display
    return properties


def contact_label(display_name: str | None, identity: ContactIdentity | None) -> str:
    """Name the contact in deal names and task subjects: its display name, else its number, else its email."""
    if display_name and display_name.strip():
        return " ".join(display_name.split())
    if identity is not None and identity.phone is not None:
        return identity.phone.display
    if identity is not None and identity.email:
        return identity.email
    return "Unknown contact"


# ---------------------------------------------------------------------------------------------------------------
# Idempotency markers
# ---------------------------------------------------------------------------------------------------------------

# The text property of each object that carries its marker, and that a retry searches.
MARKER_PROPERTIES: dict[SyncType, str] = {
    SyncType.DEAL: "dealname",
    SyncType.NOTE: "hs_note_body",
    SyncType.TASK: "hs_task_body",
}

# Letters, digits and "_" only, because search tokenizers commonly keep such a word whole but may split it
# at ":" or "-".
_MARKER_SAFE_ID = re.compile(r"[A-Za-z0-9_]{1,120}")
_WORD_CHARACTER = r"A-Za-z0-9_"


def conversation_marker(conversation_id: str, kind: SyncType) -> str:
    """Return the marker that identifies the deal, note or task callsync creates for a conversation.

    The marker is `callsync_<kind>_<conversation_id>`, e.g. `callsync_deal_conv_8f3d1b9c`. It is written into
    the object's searchable text property (MARKER_PROPERTIES) when the object is created. When a create may
    have been applied without its id reaching the database, the retry searches that property for the
    marker and adopts the object it finds instead of creating another.
    The marker uses no ":" or "-", because search tokenizers may split at them. ElevenLabs conversation ids
    (`conv_` and letters and digits) are used as they are. Any other id is replaced by the first 32 hex
    digits of its SHA-256, which keeps the marker stable and a single token.
    """
    if kind is SyncType.CONTACT:
        raise ValueError("contacts carry no marker, because they are found by phone number or email")
    if _MARKER_SAFE_ID.fullmatch(conversation_id):
        token = conversation_id
    else:
        token = "sha256_" + hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:32]
    return f"callsync_{kind.value}_{token}"


def marker_search_filter(marker: str, kind: SyncType) -> dict[str, str]:
    """Build the search filter that finds an object by its marker.

    NOTE: HubSpot does not document how CONTAINS_TOKEN splits text into tokens, nor whether note and task
    bodies are searchable that way. The marker is therefore a single word set apart by whitespace (or the end
    of the deal name), and every hit must be confirmed with text_has_marker.
    """
    return {"propertyName": MARKER_PROPERTIES[kind], "operator": "CONTAINS_TOKEN", "value": marker}


def text_has_marker(text: str | None, marker: str) -> bool:
    """Return whether `text` contains `marker` as a whole word, with no letter, digit or "_" touching it."""
    if not text:
        return False
    pattern = rf"(?<![{_WORD_CHARACTER}]){re.escape(marker)}(?![{_WORD_CHARACTER}])"
    return re.search(pattern, text) is not None


def _marker_paragraph(marker: str) -> str:
    # The spaces around the marker keep it a separate token even for a tokenizer that splits at whitespace only.
    return f"<p>callsync reference: {marker} </p>"


# ---------------------------------------------------------------------------------------------------------------
# Deal
# ---------------------------------------------------------------------------------------------------------------

# The stage ids of the pipeline every HubSpot account starts with, and the names an AI insight is likely to
# use for them. Keys are compared after normalise_stage_key.
# NOTE: the values the legacy application writes to insights.deal_stage are not documented. These keys are
# a guess, so a deployment should configure its own map, and must do so for a customised pipeline.
DEFAULT_STAGE_MAP: dict[str, str] = {
    "appointmentscheduled": "appointmentscheduled",
    "qualifiedtobuy": "qualifiedtobuy",
    "presentationscheduled": "presentationscheduled",
    "decisionmakerboughtin": "decisionmakerboughtin",
    "contractsent": "contractsent",
    "closedwon": "closedwon",
    "closedlost": "closedlost",
    "new": "appointmentscheduled",
    "lead": "appointmentscheduled",
    "prospecting": "appointmentscheduled",
    "qualification": "qualifiedtobuy",
    "qualified": "qualifiedtobuy",
    "demo": "presentationscheduled",
    "presentation": "presentationscheduled",
    "closed_won": "closedwon",
    "won": "closedwon",
    "closed_lost": "closedlost",
    "lost": "closedlost",
}
DEFAULT_DEAL_STAGE = "appointmentscheduled"


class DealSettings(BaseModel):
    """The pipeline of new deals, the stage for each `insights.deal_stage` value, and the fallback stage."""

    model_config = ConfigDict(frozen=True)

    pipeline: str = hs.DEFAULT_DEAL_PIPELINE
    stage_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STAGE_MAP))
    default_stage: str = DEFAULT_DEAL_STAGE


@dataclass(frozen=True)
class DealStage:
    """The stage a deal gets, and whether the insight's value had to fall back to the default stage."""

    stage: str
    fell_back: bool
    # The insight's value as written, None when the insights have no deal stage.
    insight_value: str | None


def normalise_stage_key(value: str) -> str:
    """Lower-case the value and join its words with "_", so "Closed Won" and "closed-won" are one key."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def map_deal_stage(deal_stage: str | None, settings: DealSettings) -> DealStage:
    """Map `insights.deal_stage` to a stage id. A missing or unknown value falls back to the default stage."""
    if deal_stage is None or not deal_stage.strip():
        return DealStage(settings.default_stage, fell_back=True, insight_value=None)

    stage_map = {normalise_stage_key(key): stage for key, stage in settings.stage_map.items()}
    stage = stage_map.get(normalise_stage_key(deal_stage))
    if stage is None:
        return DealStage(settings.default_stage, fell_back=True, insight_value=deal_stage)
    return DealStage(stage, fell_back=False, insight_value=deal_stage)


def build_deal_name(contact: str, conversation: Conversation, timezone: str) -> str:
    """Name the deal after the contact and the conversation's topic, followed by the deal's marker.

    The name is the contact, an en dash (U+2013), the topic, a middle dot and the marker, which makes the name
    unique per conversation and lets a retry find the deal.
    """
    marker = conversation_marker(conversation.conversation_id, SyncType.DEAL)
    return f"{contact} \N{EN DASH} {conversation_topic(conversation, timezone)} · {marker}"


@dataclass(frozen=True)
class DealDraft:
    """The properties of the deal to create, and the stage mapping behind `dealstage`."""

    properties: dict[str, str]
    stage: DealStage


def build_deal(
    conversation: Conversation,
    insights: Insights | None,
    contact: str,
    settings: DealSettings,
    timezone: str,
    owner_id: str | None = None,
) -> DealDraft:
    """Build the deal's properties: name, pipeline, stage and owner. Every value is a string, as on the wire."""
    stage = map_deal_stage(insights.deal_stage if insights else None, settings)
    properties = {
        "dealname": build_deal_name(contact, conversation, timezone),
        "pipeline": settings.pipeline,
        "dealstage": stage.stage,
    }
    if owner_id:
        properties["hubspot_owner_id"] = owner_id
    return DealDraft(properties=properties, stage=stage)


# ---------------------------------------------------------------------------------------------------------------
# Note body
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """One paragraph of a body: `prefix + escape(text) + suffix`. A turn is never cut, other text may be."""

    prefix: str
    text: str = ""
    suffix: str = ""
    is_turn: bool = False

    @property
    def html(self) -> str:
        return self.prefix + escape(self.text) + self.suffix


def _heading(title: str) -> _Block:
    return _Block(f"<p><strong>{escape(title)}</strong></p>")


def _paragraph_blocks(text: str) -> list[_Block]:
    return [_Block("<p>", line.strip(), "</p>") for line in text.splitlines() if line.strip()]


def _list_blocks(title: str, items: Iterable[str]) -> list[_Block]:
    items = list(items)
    if not items:
        return []
    return [_heading(title), *(_Block("<p>• ", item, "</p>") for item in items)]


def _format_call_time(seconds: float) -> str:
    hours, remainder = divmod(int(seconds), 3600)
    minutes, remaining_seconds = divmod(remainder, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{remaining_seconds:02d}"
    return f"{minutes}:{remaining_seconds:02d}"


def _turn_block(turn: ConversationTurn) -> _Block:
    if turn.role is None:
        return _Block("<p>", turn.message, "</p>", is_turn=True)
    label = escape(speaker_display_name(turn.role))
    if turn.time_in_call_secs is not None:
        label += f" ({_format_call_time(turn.time_in_call_secs)})"
    return _Block(f"<p><strong>{label}:</strong> ", turn.message, "</p>", is_turn=True)


def _transcript_truncated(turns_shown: int, turn_total: int) -> str:
    return (
        "<p><em>[Transcript truncated to fit HubSpot's property size limit: "
        f"{turns_shown} of {turn_total} turns shown]</em></p>"
    )


_TEXT_TRUNCATED = "<p><em>[Text truncated to fit HubSpot's property size limit. The rest is left out.]</em></p>"


def _fit_blocks(blocks: list[_Block], tail: str, max_length: int) -> str:
    """Join the blocks and `tail` within `max_length` characters, cutting with a visible marker.

    A turn that does not fit ends the body with a marker giving how many turns were shown, so the transcript
    is cut at a turn boundary. Any other block that does not fit is cut inside its text and ends the body
    with a general marker. Room for the longest marker is kept free until the last block.
    """
    turn_total = sum(block.is_turn for block in blocks)
    reserve = max(len(_transcript_truncated(turn_total, turn_total)), len(_TEXT_TRUNCATED))
    if len(tail) + reserve > max_length:
        raise ValueError(
            f"max_length {max_length} is too small: the marker paragraph and a truncation marker need "
            f"{len(tail) + reserve} characters"
        )

    parts: list[str] = []
    length = len(tail)
    turns_shown = 0
    for index, block in enumerate(blocks):
        html = block.html
        is_last = index == len(blocks) - 1
        if length + len(html) + (0 if is_last else reserve) <= max_length:
            parts.append(html)
            length += len(html)
            turns_shown += block.is_turn
            continue

        if block.is_turn:
            parts.append(_transcript_truncated(turns_shown, turn_total))
        else:
            cut = _cut_block(block, max_length - length - reserve)
            if cut:
                parts.append(cut)
            parts.append(_TEXT_TRUNCATED)
        break
    return "".join(parts) + tail


def _cut_block(block: _Block, room: int) -> str:
    """Return the block with the longest start of its text whose escaped form fits in `room`, or ""."""
    ellipsis = "…"
    fixed = len(block.prefix) + len(block.suffix) + len(ellipsis)
    if not block.text or fixed >= room:
        return ""
    # Cut the raw text, not the HTML, so that no entity or tag is split. The escaped length grows with the
    # raw length, so a binary search finds the longest start that fits.
    low, high = 0, len(block.text)
    while low < high:
        middle = (low + high + 1) // 2
        if fixed + len(escape(block.text[:middle])) <= room:
            low = middle
        else:
            high = middle - 1
    if low == 0:
        return ""
    return block.prefix + escape(block.text[:low]) + ellipsis + block.suffix


def build_note_body(
    conversation: Conversation,
    insights: Insights | None,
    max_length: int = hs.MAX_TEXT_PROPERTY_LENGTH,
) -> str:
    """Build `hs_note_body`: summary, sentiment, key points, competitor mentions, next steps and transcript.

    All text is escaped HTML. The body stays within `max_length` characters: the transcript is cut at a turn
    boundary with a marker that gives how many turns were shown. The note's marker always ends the body.
    """
    blocks: list[_Block] = []
    summary = conversation_summary(conversation)
    if summary:
        blocks += [_heading("Summary"), *_paragraph_blocks(summary)]

    sentiment = insights.sentiment.strip() if insights and insights.sentiment and insights.sentiment.strip() else None
    blocks.append(_Block("<p><strong>Sentiment:</strong> ", sentiment or "not recorded", "</p>"))
    if insights is not None:
        blocks += _list_blocks("Key points", insights.key_points)
        blocks += _list_blocks("Competitor mentions", insights.competitor_mentions)
        blocks += _list_blocks("Next steps", insights.next_steps)

    blocks.append(_heading("Transcript"))
    turns = parse_transcript(conversation.transcript)
    if turns:
        blocks += [_turn_block(turn) for turn in turns]
    else:
        blocks.append(_Block("<p><em>No transcript is stored for this conversation.</em></p>"))

    marker = conversation_marker(conversation.conversation_id, SyncType.NOTE)
    return _fit_blocks(blocks, _marker_paragraph(marker), max_length)


def build_note_properties(
    conversation: Conversation, insights: Insights | None, owner_id: str | None = None
) -> dict[str, str]:
    """Build the note's properties. `hs_timestamp` is when the conversation started."""
    started = conversation_started_at(conversation)
    if started is None:
        raise ValueError(
            f"conversation {conversation.conversation_id} has neither metadata.start_time_unix_secs nor created_at, "
            "so the note has no time to log"
        )
    properties = {
        "hs_note_body": build_note_body(conversation, insights),
        "hs_timestamp": format_hubspot_timestamp(started),
    }
    if owner_id:
        properties["hubspot_owner_id"] = owner_id
    return properties


# ---------------------------------------------------------------------------------------------------------------
# Follow-up task
# ---------------------------------------------------------------------------------------------------------------

FOLLOW_UP_TIME = time(9, 0)


def next_business_day_at(moment: datetime, timezone: str, at: time = FOLLOW_UP_TIME) -> datetime:
    """Return `at` local time on the first weekday after the local date of `moment`, as an aware datetime.

    Monday to Thursday give the next day; Friday, Saturday and Sunday give Monday. The result is built from the
    local date and time, so it stays at 09:00 local across a daylight-saving change.
    NOTE: public holidays are not skipped, so a task can fall due on one.
    """
    if moment.tzinfo is None:
        raise ValueError(f"moment {moment.isoformat()} has no time zone, so its local date is unknown")
    zone = ZoneInfo(timezone)
    day = moment.astimezone(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, at, tzinfo=zone)


def follow_up_due_at(conversation: Conversation, now: datetime, timezone: str) -> datetime:
    """Return when the follow-up task falls due: the next business day after the conversation ended, at 09:00.

    A conversation synced days late (a backlog, a retry) counts from `now` instead, so that no task is created
    overdue.
    """
    ended = conversation_ended_at(conversation)
    reference = max(ended, now) if ended is not None else now
    return next_business_day_at(reference, timezone)


def build_task_properties(
    conversation: Conversation,
    insights: Insights | None,
    contact: str,
    now: datetime,
    timezone: str,
    owner_id: str | None = None,
    priority: str = hs.TASK_PRIORITY_MEDIUM,
    max_length: int = hs.MAX_TEXT_PROPERTY_LENGTH,
) -> dict[str, str] | None:
    """Build the follow-up task's properties, or return None unless the sentiment is positive.

    `hs_timestamp` is the task's due date (follow_up_due_at). The body lists the insights' next steps and ends
    with the task's marker.
    """
    if insights is None or not is_positive_sentiment(insights.sentiment):
        return None

    topic = conversation_topic(conversation, timezone)
    blocks = [_Block("<p>", f"Follow up the positive ElevenLabs conversation “{topic}” with {contact}.", "</p>")]
    if insights.next_steps:
        blocks += _list_blocks("Next steps", insights.next_steps)
    else:
        blocks.append(_Block("<p><em>The conversation's insights list no next steps.</em></p>"))
    marker = conversation_marker(conversation.conversation_id, SyncType.TASK)

    properties = {
        "hs_task_subject": f"Follow up with {contact}: {topic}",
        "hs_task_body": _fit_blocks(blocks, _marker_paragraph(marker), max_length),
        "hs_task_status": hs.TASK_STATUS_NOT_STARTED,
        "hs_task_priority": priority,
        "hs_task_type": hs.TASK_TYPE_CALL,
        "hs_timestamp": format_hubspot_timestamp(follow_up_due_at(conversation, now, timezone)),
    }
    if owner_id:
        properties["hubspot_owner_id"] = owner_id
    return properties


# ---------------------------------------------------------------------------------------------------------------
# Associations
# ---------------------------------------------------------------------------------------------------------------


def _associations(targets: Iterable[tuple[str | None, int]]) -> list[dict[str, Any]]:
    return [
        {
            "to": {"id": object_id},
            "types": [{"associationCategory": hs.ASSOCIATION_CATEGORY_HUBSPOT_DEFINED, "associationTypeId": type_id}],
        }
        for object_id, type_id in targets
        if object_id
    ]


def deal_associations(contact_id: str | None) -> list[dict[str, Any]]:
    """Inline associations for the deal create: its contact (3)."""
    return _associations([(contact_id, hs.DEAL_TO_CONTACT)])


def note_associations(contact_id: str | None, deal_id: str | None) -> list[dict[str, Any]]:
    """Inline associations for the note create: contact (202) and deal (214)."""
    return _associations([(contact_id, hs.NOTE_TO_CONTACT), (deal_id, hs.NOTE_TO_DEAL)])


def task_associations(contact_id: str | None, deal_id: str | None) -> list[dict[str, Any]]:
    """Inline associations for the task create: contact (204) and deal (216)."""
    return _associations([(contact_id, hs.TASK_TO_CONTACT), (deal_id, hs.TASK_TO_DEAL)])
