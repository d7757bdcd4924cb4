import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.conversations import (
    DEFAULT_DEAL_STAGE,
    ContactIdentity,
    ContactLookup,
    Conversation,
    ConversationSkip,
    ConversationTurn,
    DealSettings,
    Insights,
    SyncType,
    build_deal,
    build_deal_name,
    build_note_body,
    build_note_properties,
    build_task_properties,
    contact_label,
    conversation_marker,
    conversation_topic,
    deal_associations,
    find_contact_identity,
    follow_up_due_at,
    is_positive_sentiment,
    is_ready_to_sync,
    map_deal_stage,
    marker_search_filter,
    new_contact_properties,
    next_business_day_at,
    note_associations,
    parse_transcript,
    task_associations,
    text_has_marker,
)
from callsync_dagster.hubspot_standin.state import (
    ASSOCIATION_TYPES,
    STANDARD_PROPERTIES,
    SearchFilter,
    property_filter_matches,
)

LIMIT = 65_536
STOCKHOLM = "Europe/Stockholm"
# Tuesday 2026-03-24 10:15 in Stockholm (CET, UTC+1).
STARTED = datetime(2026, 3, 24, 9, 15, tzinfo=UTC)

TURNS: list[dict[str, Any]] = [
    {
        "role": "agent",
        "message": "Hej, du har kommit till Solkraft Sverige. Vad kan jag hjälpa dig med?",
        "time_in_call_secs": 0,
    },
    {
        "role": "user",
        "message": "Hej! Jag heter Anna Svensson och vill ha en offert på solceller.",
        "time_in_call_secs": 5,
    },
    {"role": "agent", "message": None, "time_in_call_secs": 9},
    {"role": "agent", "message": "Vad roligt! Hur stort är taket ungefär?", "time_in_call_secs": 12.4},
    {"role": "user", "message": "Runt 80 kvadratmeter, söderläge.", "time_in_call_secs": 18},
]


def _payload(**analysis_overrides: Any) -> dict[str, Any]:
    analysis: dict[str, Any] = {
        "call_successful": "success",
        "call_summary_title": "Offert på solceller",
        "transcript_summary": "Anna vill ha en offert på solceller för ett tak på 80 kvm.",
        "data_collection_results": {},
    }
    analysis.update(analysis_overrides)
    return {
        "metadata": {
            "start_time_unix_secs": int(STARTED.timestamp()),
            "call_duration_secs": 185,
            "phone_call": {"direction": "inbound", "agent_number": "+46852250000", "external_number": "+46701234567"},
        },
        "analysis": analysis,
    }


def _conversation(**overrides: Any) -> Conversation:
    values: dict[str, Any] = {
        "id": uuid4(),
        "conversation_id": "conv_01jq7solceller",
        "agent_id": "agent_solkraft_sv",
        "status": "done",
        "transcript": json.dumps(TURNS, ensure_ascii=False),
        "summary": "Anna Svensson vill ha en offert på solceller.",
        "metadata": _payload(),
        "created_at": STARTED + timedelta(minutes=4),
    }
    values.update(overrides)
    return Conversation.model_validate(values)


def _with_phone_call(phone_call: dict[str, Any] | None, **analysis_overrides: Any) -> Conversation:
    payload = _payload(**analysis_overrides)
    if phone_call is None:
        del payload["metadata"]["phone_call"]
    else:
        payload["metadata"]["phone_call"] = phone_call
    return _conversation(metadata=payload)


def _collected(**values: Any) -> dict[str, Any]:
    return {key: {"value": value, "rationale": "Kunden sa det under samtalet."} for key, value in values.items()}


def _insights(**overrides: Any) -> Insights:
    values: dict[str, Any] = {
        "conversation_id": "conv_01jq7solceller",
        "sentiment": "positive",
        "key_points": ["Tak på 80 kvm i söderläge", "Vill ha installation före sommaren"],
        "deal_stage": "qualifiedtobuy",
        "competitor_mentions": ["Solenergi Norr AB"],
        "next_steps": ["Skicka offert senast fredag", "Boka platsbesök"],
    }
    values.update(overrides)
    return Insights.model_validate(values)


# ---------------------------------------------------------------------------------------------------------------
# Rows and readiness
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ready"),
    [("done", True), ("processing", False), ("in-progress", False), ("failed", False), (None, False)],
    ids=["done", "processing", "in-progress", "failed", "no-status"],
)
def test_conversation_ready_only_when_done(status: str | None, ready: bool) -> None:
    assert is_ready_to_sync(_conversation(status=status)) is ready


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ()),
        ([], ()),
        (["Boka möte", None, "  ", " Ring tillbaka "], ("Boka möte", "Ring tillbaka")),
        ('["Skicka offert", null]', ("Skicka offert",)),
        ("Skicka offert", ("Skicka offert",)),
    ],
    ids=["null-array", "empty", "null-and-blank-items", "json-text", "single-string"],
)
def test_insights_list_columns_cleaned(raw: Any, expected: tuple[str, ...]) -> None:
    insights = Insights.model_validate({"next_steps": raw, "key_points": raw, "competitor_mentions": raw})
    assert insights.next_steps == expected
    assert insights.key_points == expected
    assert insights.competitor_mentions == expected


# ---------------------------------------------------------------------------------------------------------------
# Transcript
# ---------------------------------------------------------------------------------------------------------------

EXPECTED_TURNS = [
    ConversationTurn("agent", TURNS[0]["message"], 0.0),
    ConversationTurn("user", TURNS[1]["message"], 5.0),
    ConversationTurn("agent", TURNS[3]["message"], 12.4),
    ConversationTurn("user", TURNS[4]["message"], 18.0),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (json.dumps(TURNS, ensure_ascii=False), EXPECTED_TURNS),
        (TURNS, EXPECTED_TURNS),
        ({"transcript": TURNS}, EXPECTED_TURNS),
        (
            [{"role": "agent", "message": "  "}, {"role": "user", "message": None}, {"role": "user", "message": "Ja"}],
            [ConversationTurn("user", "Ja")],
        ),
        ([{"message": "Utan roll", "time_in_call_secs": "7.5"}], [ConversationTurn(None, "Utan roll", 7.5)]),
        (["inte ett objekt", 5, None, {"role": "agent", "message": "Hej"}], [ConversationTurn("agent", "Hej")]),
        (
            "Agent: Hej, Solkraft Sverige.\n\nKund: Hej, jag vill ha en offert.",
            [
                ConversationTurn(None, "Agent: Hej, Solkraft Sverige."),
                ConversationTurn(None, "Kund: Hej, jag vill ha en offert."),
            ],
        ),
        ("", []),
        (None, []),
        ({"other": 1}, []),
    ],
    ids=[
        "json-text",
        "jsonb-list",
        "wrapped-object",
        "null-and-blank-messages-skipped",
        "no-role-and-string-time",
        "non-objects-skipped",
        "plain-text-by-line",
        "empty-text",
        "null",
        "unknown-object",
    ],
)
def test_transcript_parsed(raw: Any, expected: list[ConversationTurn]) -> None:
    assert parse_transcript(raw) == expected


# ---------------------------------------------------------------------------------------------------------------
# Contact identity
# ---------------------------------------------------------------------------------------------------------------

INBOUND = {"direction": "inbound", "agent_number": "+46852250000", "external_number": "+46701234567"}
OUTBOUND = {"direction": "outbound", "agent_number": "+46852250000", "external_number": "+46731234567"}


@pytest.mark.parametrize(
    ("phone_call", "collected", "expected"),
    [
        (INBOUND, {}, [("phone", "+46701234567", "external_number")]),
        (OUTBOUND, {}, [("phone", "+46731234567", "external_number")]),
        (
            {**OUTBOUND, "external_number": "0046 73 123 45 67"},
            {},
            [("phone", "+46731234567", "external_number")],
        ),
        (
            INBOUND,
            _collected(kundens_epost="Anna.Svensson@Exempel.se"),
            [
                ("phone", "+46701234567", "external_number"),
                ("email", "anna.svensson@exempel.se", "data_collection_results.kundens_epost"),
            ],
        ),
        (
            None,
            _collected(telefonnummer="070-123 45 67"),
            [("phone", "+46701234567", "data_collection_results.telefonnummer")],
        ),
        (
            {**INBOUND, "external_number": "anonymous"},
            _collected(kontakt="mailto:erik.lund@bolaget.se"),
            [("email", "erik.lund@bolaget.se", "data_collection_results.kontakt")],
        ),
        (
            None,
            _collected(mobil="0731234567", e_post="karin@exempel.se"),
            [
                ("email", "karin@exempel.se", "data_collection_results.e_post"),
                ("phone", "+46731234567", "data_collection_results.mobil"),
            ],
        ),
        (
            None,
            _collected(kund_kontakt="+46 (0)70-123 45 67"),
            [("phone", "+46701234567", "data_collection_results.kund_kontakt")],
        ),
        (
            None,
            _collected(leveransdatum="2026-03-30", telefon="+47 412 34 567"),
            [("phone", "+4741234567", "data_collection_results.telefon")],
        ),
        (
            None,
            {
                "telefon": {"value": None, "rationale": "Ingen uppgift"},
                "budget": {"value": 150000},
                "nummer": "08-522 500 00",
            },
            [("phone", "+46852250000", "data_collection_results.nummer")],
        ),
    ],
    ids=[
        "inbound-external-number",
        "outbound-uses-external-not-agent-number",
        "external-number-with-00-prefix",
        "external-number-then-collected-email",
        "collected-national-number",
        "hidden-external-then-collected-email",
        "collected-email-before-collected-phone",
        "collected-number-under-unhinted-key",
        "date-not-read-as-number-norwegian-kept",
        "null-value-skipped-plain-value-read",
    ],
)
def test_contact_identity_lookups(
    phone_call: dict[str, Any] | None, collected: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    conversation = _with_phone_call(phone_call, data_collection_results=collected)
    identity = find_contact_identity(conversation, "SE")
    assert isinstance(identity, ContactIdentity)
    assert [(lookup.kind, lookup.value, lookup.source) for lookup in identity.lookups] == expected


@pytest.mark.parametrize(
    ("phone_call", "collected", "detail"),
    [
        (None, {}, "the call has no external number"),
        ({"direction": "outbound", "agent_number": "+46852250000"}, {}, "the call has no external number"),
        ({**INBOUND, "external_number": "anonymous"}, {}, "withheld ('anonymous')"),
        ({**INBOUND, "external_number": "12"}, {}, "'12' is not a valid phone number"),
        (
            None,
            _collected(leveransdatum="2026-03-30", budget="150 000", namn="Anna Svensson", kundnummer="12345678"),
            "no external number",
        ),
    ],
    ids=[
        "web-call-nothing-collected",
        "outbound-agent-number-never-used",
        "hidden-external-number",
        "invalid-external-number",
        "collected-values-not-contact-details",
    ],
)
def test_contact_identity_skip_reason(
    phone_call: dict[str, Any] | None, collected: dict[str, Any], detail: str
) -> None:
    conversation = _with_phone_call(phone_call, data_collection_results=collected)
    skip = find_contact_identity(conversation, "SE")
    assert isinstance(skip, ConversationSkip)
    assert skip.code == "no_contact_details"
    assert detail in skip.reason


def test_prefilled_contact_never_skipped() -> None:
    conversation = _with_phone_call(None).model_copy(update={"hubspot_contact_id": "501"})
    identity = find_contact_identity(conversation, "SE")
    assert isinstance(identity, ContactIdentity)
    assert identity.lookups == ()


@pytest.mark.parametrize(
    "metadata",
    [
        _payload(),
        json.dumps(_payload()),
        {"type": "post_call_transcription", "event_timestamp": 1774343800, "data": _payload()},
        {**_payload()["metadata"], "analysis": _payload()["analysis"]},
    ],
    ids=["data-object", "json-text", "whole-webhook-body", "metadata-object-with-analysis"],
)
def test_payload_layouts_read(metadata: Any) -> None:
    conversation = _conversation(metadata=metadata)
    identity = find_contact_identity(conversation, "SE")
    assert isinstance(identity, ContactIdentity)
    assert identity.lookups[0] == ContactLookup("phone", "+46701234567", "external_number")
    assert conversation_topic(conversation, STOCKHOLM) == "Offert på solceller"


def test_new_contact_properties_email() -> None:
    identity = ContactIdentity(lookups=(), email="anna.svensson@exempel.se")
    assert new_contact_properties(identity) == {"email": "anna.svensson@exempel.se"}


def test_new_contact_properties_phone_only() -> None:
    identity = find_contact_identity(_conversation(), "SE")
    assert isinstance(identity, ContactIdentity)
    assert new_contact_properties(identity) == {"phone": "+46701234567", "firstname": "070-123 45 67"}
    assert set(new_contact_properties(identity)) <= set(STANDARD_PROPERTIES["contacts"])


@pytest.mark.parametrize(
    ("display_name", "identity", "expected"),
    [
        ("  Anna   Svensson ", None, "Anna Svensson"),
        (None, "phone", "070-123 45 67"),
        ("", "email", "karin@exempel.se"),
        (None, None, "Unknown contact"),
    ],
    ids=["display-name", "number", "email", "nothing"],
)
def test_contact_label(display_name: str | None, identity: str | None, expected: str) -> None:
    identities = {
        "phone": find_contact_identity(_conversation(), "SE"),
        "email": ContactIdentity(lookups=(), email="karin@exempel.se"),
        None: None,
    }
    chosen = identities[identity]
    assert not isinstance(chosen, ConversationSkip)
    assert contact_label(display_name, chosen) == expected


# ---------------------------------------------------------------------------------------------------------------
# Markers
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conversation_id", "kind", "expected"),
    [
        ("conv_01jq7solceller", SyncType.DEAL, "callsync_deal_conv_01jq7solceller"),
        ("conv_01jq7solceller", SyncType.NOTE, "callsync_note_conv_01jq7solceller"),
        ("conv_01jq7solceller", SyncType.TASK, "callsync_task_conv_01jq7solceller"),
    ],
    ids=["deal", "note", "task"],
)
def test_marker_per_object_kind(conversation_id: str, kind: SyncType, expected: str) -> None:
    assert conversation_marker(conversation_id, kind) == expected


@pytest.mark.parametrize(
    "conversation_id",
    ["3f2b9c1e-8d4a-4e1b-9c2f-7a6b5d4e3c2b", "samtal:2026-03-24 nr 7", "å" * 10, "x" * 121],
    ids=["uuid-with-hyphens", "colon-and-space", "non-ascii", "too-long"],
)
def test_marker_hashed_for_unusual_ids(conversation_id: str) -> None:
    marker = conversation_marker(conversation_id, SyncType.DEAL)
    assert re.fullmatch(r"callsync_deal_sha256_[0-9a-f]{32}", marker)
    assert conversation_marker(conversation_id, SyncType.DEAL) == marker


def test_marker_rejected_for_contact() -> None:
    with pytest.raises(ValueError, match="contacts carry no marker"):
        conversation_marker("conv_1", SyncType.CONTACT)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("<p>callsync reference: callsync_note_conv_1 </p>", True),
        ("Anna Svensson \N{EN DASH} Offert · callsync_note_conv_1", True),
        ("<div><p>callsync reference: callsync_note_conv_1</p></div>", True),
        ("callsync_note_conv_12", False),
        ("xcallsync_note_conv_1", False),
        ("callsync_deal_conv_1", False),
        (None, False),
    ],
    ids=["note-paragraph", "end-of-name", "html-rewritten", "longer-id", "prefixed", "other-kind", "no-text"],
)
def test_text_has_marker(text: str | None, found: bool) -> None:
    assert text_has_marker(text, "callsync_note_conv_1") is found


@pytest.mark.parametrize("kind", [SyncType.DEAL, SyncType.NOTE, SyncType.TASK], ids=["deal", "note", "task"])
def test_standin_search_finds_marker(kind: SyncType) -> None:
    conversation = _conversation()
    built = {
        SyncType.DEAL: build_deal(conversation, _insights(), "Anna Svensson", DealSettings(), STOCKHOLM).properties,
        SyncType.NOTE: build_note_properties(conversation, _insights()),
        SyncType.TASK: build_task_properties(conversation, _insights(), "Anna Svensson", STARTED, STOCKHOLM),
    }[kind]
    assert built is not None
    marker = conversation_marker(conversation.conversation_id, kind)
    search = marker_search_filter(marker, kind)
    stored = built[search["propertyName"]]
    object_type = {SyncType.DEAL: "deals", SyncType.NOTE: "notes", SyncType.TASK: "tasks"}[kind]
    definition = STANDARD_PROPERTIES[object_type][search["propertyName"]]

    assert search["operator"] == "CONTAINS_TOKEN"
    assert property_filter_matches(stored, SearchFilter(search["propertyName"], "CONTAINS_TOKEN", marker), definition)
    assert text_has_marker(stored, marker)
    other = conversation_marker("conv_01jq7annat", kind)
    assert not property_filter_matches(
        stored, SearchFilter(search["propertyName"], "CONTAINS_TOKEN", other), definition
    )


# ---------------------------------------------------------------------------------------------------------------
# Deal
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deal_stage", "stage", "fell_back"),
    [
        ("qualifiedtobuy", "qualifiedtobuy", False),
        ("Closed Won", "closedwon", False),
        ("closed-lost", "closedlost", False),
        ("  PRESENTATION ", "presentationscheduled", False),
        ("Kvalificerad", DEFAULT_DEAL_STAGE, True),
        ("", DEFAULT_DEAL_STAGE, True),
        (None, DEFAULT_DEAL_STAGE, True),
    ],
    ids=[
        "hubspot-stage-id",
        "words-any-case",
        "hyphenated",
        "padded-upper-case",
        "unknown-swedish",
        "blank",
        "missing",
    ],
)
def test_default_stage_map(deal_stage: str | None, stage: str, fell_back: bool) -> None:
    mapped = map_deal_stage(deal_stage, DealSettings())
    assert mapped.stage == stage
    assert mapped.fell_back is fell_back


@pytest.mark.parametrize(
    ("deal_stage", "stage", "fell_back"),
    [
        ("Offert skickad", "1234567", False),
        ("offert-skickad", "1234567", False),
        ("Avtal", "1234568", False),
        ("qualifiedtobuy", "1234500", True),
    ],
    ids=["configured-value", "configured-value-hyphenated", "second-value", "default-map-not-merged"],
)
def test_configured_stage_map(deal_stage: str, stage: str, fell_back: bool) -> None:
    settings = DealSettings(
        pipeline="98765", stage_map={"Offert skickad": "1234567", "avtal": "1234568"}, default_stage="1234500"
    )
    mapped = map_deal_stage(deal_stage, settings)
    assert mapped.stage == stage
    assert mapped.fell_back is fell_back
    assert mapped.insight_value == deal_stage


def test_deal_properties() -> None:
    settings = DealSettings(pipeline="98765", stage_map={"qualifiedtobuy": "1234567"}, default_stage="1234500")
    draft = build_deal(_conversation(), _insights(), "Anna Svensson", settings, STOCKHOLM, owner_id="77")
    assert draft.properties == {
        "dealname": "Anna Svensson \N{EN DASH} Offert på solceller · callsync_deal_conv_01jq7solceller",
        "pipeline": "98765",
        "dealstage": "1234567",
        "hubspot_owner_id": "77",
    }
    assert draft.stage.fell_back is False
    assert set(draft.properties) <= set(STANDARD_PROPERTIES["deals"])


def test_deal_unknown_stage_recorded() -> None:
    draft = build_deal(_conversation(), _insights(deal_stage="Förhandling"), "Anna Svensson", DealSettings(), STOCKHOLM)
    assert draft.properties["dealstage"] == DEFAULT_DEAL_STAGE
    assert draft.stage.fell_back is True
    assert draft.stage.insight_value == "Förhandling"
    assert "hubspot_owner_id" not in draft.properties


def test_deal_without_insights_falls_back() -> None:
    draft = build_deal(_conversation(), None, "070-123 45 67", DealSettings(), STOCKHOLM)
    assert draft.properties["dealstage"] == DEFAULT_DEAL_STAGE
    assert draft.stage.fell_back is True
    assert draft.stage.insight_value is None


def test_deal_name_falls_back_to_local_date() -> None:
    # 23:30 UTC on Tuesday is already Wednesday in Stockholm.
    late = datetime(2026, 3, 24, 23, 30, tzinfo=UTC)
    payload = _payload(call_summary_title="  ")
    payload["metadata"]["start_time_unix_secs"] = int(late.timestamp())
    name = build_deal_name("070-123 45 67", _conversation(metadata=payload), STOCKHOLM)
    assert name == "070-123 45 67 \N{EN DASH} ElevenLabs conversation on 2026-03-25 · callsync_deal_conv_01jq7solceller"


def test_deal_name_unique_per_conversation() -> None:
    first = build_deal_name("Anna Svensson", _conversation(conversation_id="conv_a1"), STOCKHOLM)
    second = build_deal_name("Anna Svensson", _conversation(conversation_id="conv_a2"), STOCKHOLM)
    assert first != second


# ---------------------------------------------------------------------------------------------------------------
# Note
# ---------------------------------------------------------------------------------------------------------------


def test_note_body_sections_in_order() -> None:
    body = build_note_body(_conversation(), _insights())
    order = ["Summary", "Sentiment:", "Key points", "Competitor mentions", "Next steps", "Transcript"]
    positions = [body.index(f"<strong>{section}") for section in order]
    assert positions == sorted(positions)
    assert "<p><strong>Sentiment:</strong> positive</p>" in body
    assert "<p>• Tak på 80 kvm i söderläge</p>" in body
    assert "<p>• Solenergi Norr AB</p>" in body
    assert "<p>• Boka platsbesök</p>" in body
    assert "<p><strong>Customer (0:05):</strong> Hej! Jag heter Anna Svensson" in body
    assert "<p><strong>Agent (0:12):</strong> Vad roligt!" in body
    assert body.endswith("<p>callsync reference: callsync_note_conv_01jq7solceller </p>")


def test_note_body_skips_null_turns() -> None:
    body = build_note_body(_conversation(), _insights())
    assert body.count("<strong>Agent") == 2
    assert body.count("<strong>Customer") == 2
    assert "None" not in body
    assert "(0:09)" not in body


def test_note_body_escapes_html() -> None:
    insights = _insights(
        key_points=["Pris <under> 100 000 kr & snabb leverans"], competitor_mentions=["Sol & Vind <AB>"]
    )
    transcript = [{"role": "user", "message": "<script>alert('hej')</script>", "time_in_call_secs": 1}]
    body = build_note_body(_conversation(transcript=transcript, summary="Kund & <b>offert</b>"), insights)
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    assert "Pris &lt;under&gt; 100 000 kr &amp; snabb leverans" in body
    assert "Sol &amp; Vind &lt;AB&gt;" in body
    assert "Kund &amp; &lt;b&gt;offert&lt;/b&gt;" in body


@pytest.mark.parametrize(
    ("insights", "summary", "expected"),
    [
        (None, None, "<p><strong>Sentiment:</strong> not recorded</p>"),
        (Insights(sentiment="  "), None, "<p><strong>Sentiment:</strong> not recorded</p>"),
        (Insights(sentiment="Blandad"), None, "<p><strong>Sentiment:</strong> Blandad</p>"),
    ],
    ids=["no-insights", "blank-sentiment", "unknown-sentiment-shown"],
)
def test_note_body_sentiment(insights: Insights | None, summary: str | None, expected: str) -> None:
    body = build_note_body(_conversation(summary=summary), insights)
    assert expected in body
    assert "Key points" not in body


def test_note_summary_from_analysis() -> None:
    body = build_note_body(_conversation(summary=None), _insights())
    assert "<p>Anna vill ha en offert på solceller för ett tak på 80 kvm.</p>" in body


def test_note_without_transcript() -> None:
    body = build_note_body(_conversation(transcript=None), _insights())
    assert "<em>No transcript is stored for this conversation.</em>" in body


def test_long_transcript_cut_at_turn_boundary() -> None:
    transcript = [
        {
            "role": "agent" if index % 2 else "user",
            "message": f"replik {index} " + "ö" * 990,
            "time_in_call_secs": index,
        }
        for index in range(100)
    ]
    body = build_note_body(_conversation(transcript=transcript), _insights())
    shown = body.count("<p><strong>Agent") + body.count("<p><strong>Customer")

    assert len(body) <= LIMIT
    assert 0 < shown < 100
    assert f"[Transcript truncated to fit HubSpot's property size limit: {shown} of 100 turns shown]" in body
    assert f"replik {shown - 1} " in body
    assert f"replik {shown} " not in body
    assert body.endswith("<p>callsync reference: callsync_note_conv_01jq7solceller </p>")


def test_transcript_fitting_exactly_not_cut() -> None:
    transcript = [{"role": "user", "message": "Hej"}]
    short = build_note_body(_conversation(transcript=transcript), _insights())
    # Grow the only turn until the body is exactly at the limit.
    transcript = [{"role": "user", "message": "Hej" + "a" * (LIMIT - len(short))}]
    body = build_note_body(_conversation(transcript=transcript), _insights())
    assert len(body) == LIMIT
    assert "truncated" not in body


def test_escaping_counted_in_limit() -> None:
    transcript = [{"role": "user", "message": "&<>" * 2000} for _ in range(20)]
    body = build_note_body(_conversation(transcript=transcript), _insights())
    assert len(body) <= LIMIT
    assert "turns shown]" in body


def test_huge_key_point_cut_with_marker() -> None:
    body = build_note_body(_conversation(), _insights(key_points=["ä&" * 50_000, "Nästa punkt"]))
    assert len(body) <= LIMIT
    assert "[Text truncated to fit HubSpot's property size limit. The rest is left out.]" in body
    assert "…</p>" in body
    assert "Nästa punkt" not in body
    assert body.endswith("<p>callsync reference: callsync_note_conv_01jq7solceller </p>")


def test_note_properties() -> None:
    properties = build_note_properties(_conversation(), _insights(), owner_id="77")
    assert properties["hs_timestamp"] == "2026-03-24T09:15:00.000Z"
    assert properties["hubspot_owner_id"] == "77"
    assert properties["hs_note_body"].startswith("<p><strong>Summary</strong></p>")
    assert set(properties) <= set(STANDARD_PROPERTIES["notes"])


def test_note_time_from_created_at() -> None:
    payload = _payload()
    del payload["metadata"]["start_time_unix_secs"]
    properties = build_note_properties(_conversation(metadata=payload), None)
    assert properties["hs_timestamp"] == "2026-03-24T09:19:00.000Z"


def test_note_without_any_time_rejected() -> None:
    conversation = _conversation(metadata={}, created_at=None)
    with pytest.raises(ValueError, match="conv_01jq7solceller has neither"):
        build_note_properties(conversation, None)


# ---------------------------------------------------------------------------------------------------------------
# Follow-up task
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentiment", "creates_task"),
    [
        ("positive", True),
        ("Positive", True),
        (" POSITIVE ", True),
        ("neutral", False),
        ("negative", False),
        ("mixed", False),
        ("positiv", False),
        ("", False),
        (None, False),
    ],
    ids=["positive", "capitalised", "padded-upper-case", "neutral", "negative", "unknown", "swedish", "blank", "null"],
)
def test_task_only_for_positive_sentiment(sentiment: str | None, creates_task: bool) -> None:
    assert is_positive_sentiment(sentiment) is creates_task
    properties = build_task_properties(
        _conversation(), _insights(sentiment=sentiment), "Anna Svensson", STARTED, STOCKHOLM
    )
    assert (properties is not None) is creates_task


def test_no_task_without_insights() -> None:
    assert build_task_properties(_conversation(), None, "Anna Svensson", STARTED, STOCKHOLM) is None


def test_task_properties() -> None:
    properties = build_task_properties(_conversation(), _insights(), "Anna Svensson", STARTED, STOCKHOLM, owner_id="77")
    assert properties is not None
    assert properties["hs_task_subject"] == "Follow up with Anna Svensson: Offert på solceller"
    assert properties["hs_task_status"] == "NOT_STARTED"
    assert properties["hs_task_priority"] == "MEDIUM"
    assert properties["hs_task_type"] == "CALL"
    assert properties["hubspot_owner_id"] == "77"
    # Tuesday 10:18 in Stockholm, so Wednesday 09:00 CET.
    assert properties["hs_timestamp"] == "2026-03-25T08:00:00.000Z"
    assert "<p>• Skicka offert senast fredag</p><p>• Boka platsbesök</p>" in properties["hs_task_body"]
    assert properties["hs_task_body"].endswith("<p>callsync reference: callsync_task_conv_01jq7solceller </p>")
    assert set(properties) <= set(STANDARD_PROPERTIES["tasks"])


def test_task_body_without_next_steps() -> None:
    properties = build_task_properties(_conversation(), _insights(next_steps=None), "Anna Svensson", STARTED, STOCKHOLM)
    assert properties is not None
    assert "<em>The conversation's insights list no next steps.</em>" in properties["hs_task_body"]


def test_task_body_escaped_and_within_limit() -> None:
    insights = _insights(next_steps=["Ring <Anna> & Erik " + "x" * 1000 for _ in range(100)])
    properties = build_task_properties(_conversation(), insights, "Anna & Co", STARTED, STOCKHOLM)
    assert properties is not None
    body = properties["hs_task_body"]
    assert len(body) <= LIMIT
    assert "Ring &lt;Anna&gt; &amp; Erik" in body
    assert "Anna &amp; Co" in body
    assert "[Text truncated" in body


def _local(year: int, month: int, day: int, hour: int, minute: int = 0, timezone: str = STOCKHOLM) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(timezone))


@pytest.mark.parametrize(
    ("moment", "timezone", "due_utc"),
    [
        (_local(2026, 3, 23, 14), STOCKHOLM, datetime(2026, 3, 24, 8, tzinfo=UTC)),
        (_local(2026, 3, 19, 8), STOCKHOLM, datetime(2026, 3, 20, 8, tzinfo=UTC)),
        (_local(2026, 3, 20, 16), STOCKHOLM, datetime(2026, 3, 23, 8, tzinfo=UTC)),
        (_local(2026, 3, 21, 11), STOCKHOLM, datetime(2026, 3, 23, 8, tzinfo=UTC)),
        (_local(2026, 3, 22, 20), STOCKHOLM, datetime(2026, 3, 23, 8, tzinfo=UTC)),
        (_local(2026, 3, 26, 23, 30), STOCKHOLM, datetime(2026, 3, 27, 8, tzinfo=UTC)),
        (datetime(2026, 3, 20, 23, 30, tzinfo=UTC), STOCKHOLM, datetime(2026, 3, 23, 8, tzinfo=UTC)),
        (_local(2026, 3, 27, 15), STOCKHOLM, datetime(2026, 3, 30, 7, tzinfo=UTC)),
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), STOCKHOLM, datetime(2026, 3, 30, 7, tzinfo=UTC)),
        (_local(2026, 10, 23, 15), STOCKHOLM, datetime(2026, 10, 26, 8, tzinfo=UTC)),
        (_local(2026, 10, 24, 23, 30), STOCKHOLM, datetime(2026, 10, 26, 8, tzinfo=UTC)),
        (_local(2026, 3, 6, 17, timezone="America/New_York"), "America/New_York", datetime(2026, 3, 9, 13, tzinfo=UTC)),
    ],
    ids=[
        "monday-to-tuesday",
        "thursday-to-friday",
        "friday-to-monday",
        "saturday-to-monday",
        "sunday-to-monday",
        "thursday-late-evening-local-date",
        "friday-utc-is-saturday-local",
        "friday-before-spring-change-cest",
        "sunday-of-spring-change",
        "friday-before-autumn-change-cet",
        "saturday-night-before-autumn-change",
        "new-york-friday-before-its-change",
    ],
)
def test_next_business_day_at_nine(moment: datetime, timezone: str, due_utc: datetime) -> None:
    due = next_business_day_at(moment, timezone)
    assert due == due_utc
    assert due.hour == 9
    assert due.minute == 0
    assert due.weekday() < 5


def test_next_business_day_needs_time_zone() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        next_business_day_at(datetime(2026, 3, 24, 10), STOCKHOLM)


@pytest.mark.parametrize(
    ("now", "due_utc"),
    [
        (STARTED + timedelta(minutes=10), datetime(2026, 3, 25, 8, tzinfo=UTC)),
        (_local(2026, 4, 3, 10), datetime(2026, 4, 6, 7, tzinfo=UTC)),
    ],
    ids=["synced-right-away", "backlog-synced-a-friday-later"],
)
def test_follow_up_due_from_later_time(now: datetime, due_utc: datetime) -> None:
    assert follow_up_due_at(_conversation(), now, STOCKHOLM) == due_utc


# ---------------------------------------------------------------------------------------------------------------
# Associations
# ---------------------------------------------------------------------------------------------------------------


def _type_ids(associations: list[dict[str, Any]]) -> list[tuple[str, int]]:
    pairs = []
    for association in associations:
        assert association["types"][0]["associationCategory"] == "HUBSPOT_DEFINED"
        pairs.append((association["to"]["id"], association["types"][0]["associationTypeId"]))
    return pairs


@pytest.mark.parametrize(
    ("associations", "expected"),
    [
        (note_associations("501", "9001"), [("501", 202), ("9001", 214)]),
        (task_associations("501", "9001"), [("501", 204), ("9001", 216)]),
        (deal_associations("501"), [("501", 3)]),
        (note_associations("501", None), [("501", 202)]),
        (task_associations(None, "9001"), [("9001", 216)]),
        (deal_associations(None), []),
    ],
    ids=["note", "task", "deal", "note-without-deal", "task-without-contact", "deal-without-contact"],
)
def test_association_type_ids(associations: list[dict[str, Any]], expected: list[tuple[str, int]]) -> None:
    assert _type_ids(associations) == expected


@pytest.mark.parametrize(
    ("type_id", "from_type", "to_type"),
    [
        (hs.NOTE_TO_CONTACT, "notes", "contacts"),
        (hs.NOTE_TO_COMPANY, "notes", "companies"),
        (hs.NOTE_TO_DEAL, "notes", "deals"),
        (hs.TASK_TO_CONTACT, "tasks", "contacts"),
        (hs.TASK_TO_COMPANY, "tasks", "companies"),
        (hs.TASK_TO_DEAL, "tasks", "deals"),
        (hs.DEAL_TO_CONTACT, "deals", "contacts"),
        (hs.CONTACT_TO_DEAL, "contacts", "deals"),
    ],
    ids=[
        "note-contact",
        "note-company",
        "note-deal",
        "task-contact",
        "task-company",
        "task-deal",
        "deal-contact",
        "contact-deal",
    ],
)
def test_association_constants_match_standin(type_id: int, from_type: str, to_type: str) -> None:
    association_type = ASSOCIATION_TYPES[type_id]
    assert (association_type.from_type, association_type.to_type) == (from_type, to_type)
