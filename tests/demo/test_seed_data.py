"""The demo dataset: deterministic, covering every category, and with outcomes that follow callsync's rules."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callsync_dagster.core.call_body import build_body
from callsync_dagster.core.contacts import choose_contact, confirm_contact_matches
from callsync_dagster.core.counterparty import Counterparty, CounterpartyProblem, find_counterparty
from callsync_dagster.core.models import CallSession, Transcription
from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number
from callsync_dagster.demo.seed_data import (
    AGENTS,
    CATEGORY_NAMES,
    COMPANY_EXTENSIONS,
    COMPANY_NUMBERS,
    DEFAULT_COUNT,
    LONG_TRANSCRIPT_MIN_CHARS,
    MINIMUM_COUNT,
    MOBILE_PREFIXES,
    NOT_ELIGIBLE,
    SKIPPED,
    SUPERSEDED_DRAFT_MARK,
    SYNCED,
    DemoDataset,
    build_demo_dataset,
)
from callsync_dagster.ops.enrich import blocked_numbers_by_e164
from callsync_dagster.resources.settings import CallSyncSettings

NOW = datetime(2026, 4, 3, 12, 30, tzinfo=UTC)
SETTINGS = CallSyncSettings()

# The spellings of Swedish numbers that Telavox delivers, as they appear on the customer's side.
SWEDISH_FORMATS = {
    "070-123 45 67": r"^07\d-\d{3} \d{2} \d{2}$",
    "070 123 45 67": r"^07\d \d{3} \d{2} \d{2}$",
    "0701234567": r"^07\d{8}$",
    "+46 70 123 45 67": r"^\+46 7\d \d{3} \d{2} \d{2}$",
    "+46 (0)70-123 45 67": r"^\+46 \(0\)7\d-\d{3} \d{2} \d{2}$",
    "0046701234567": r"^00467\d{8}$",
    "46701234567": r"^467\d{8}$",
    "+46070...": r"^\+4607\d{8}$",
    "08-123 456 78": r"^08-\d{3} \d{3} \d{2}$",
    "031-12 34 56": r"^031-\d{2} \d{2} \d{2}$",
}


@pytest.fixture(scope="module")
def dataset() -> DemoDataset:
    return build_demo_dataset(now=NOW)


def customer_side(session: dict[str, Any]) -> str | None:
    """Return the raw customer number the core picks, or None when it finds no counterparty."""
    counterparty = find_counterparty(session["direction"], session["from_number"], session["to_number"])
    if isinstance(counterparty, Counterparty):
        return counterparty.raw_number
    return None


def core_outcome(session: dict[str, Any], blocked: dict[str, str | None]) -> tuple[str, str | None]:
    """Compute the outcome that callsync's claim query and enrich step give a session, with contact_policy 'create'."""
    ended_at = session["ended_at"]
    if ended_at is None:
        return (NOT_ELIGIBLE, None)
    transcript_done = session["transcription_status"] in ("completed", "failed")
    if not transcript_done and ended_at > NOW - timedelta(minutes=SETTINGS.transcript_wait_minutes):
        return (NOT_ELIGIBLE, None)

    counterparty = find_counterparty(
        session["direction"],
        session["from_number"],
        session["to_number"],
        SETTINGS.default_region,
        has_prefilled_contact=bool(session["hubspot_contact_id"]),
    )
    if isinstance(counterparty, CounterpartyProblem):
        return (SKIPPED, counterparty.code)
    if counterparty.number is not None and counterparty.number.e164 in blocked:
        return (SKIPPED, "blocked_number")
    return (SYNCED, None)


def sessions_in(dataset: DemoDataset, category: str) -> list[dict[str, Any]]:
    return [session for session in dataset.sessions if dataset.categories[session["id"]] == category]


def newest_transcription(dataset: DemoDataset, session_id: str) -> dict[str, Any] | None:
    rows = [row for row in dataset.transcriptions if row["call_session_id"] == session_id]
    return max(rows, key=lambda row: row["created_at"]) if rows else None


def call_body(dataset: DemoDataset, session: dict[str, Any]) -> str:
    row = newest_transcription(dataset, session["id"])
    assert row is not None
    transcription = Transcription(
        full_text=row["full_text"],
        speaker_labels=row["speaker_labels"],
        summary=row["summary"],
        source="transcriptions",
    )
    return build_body(transcription, session["transcription_status"])


# Determinism and size


def test_dataset_same_seed_same_data() -> None:
    assert build_demo_dataset(seed=11, now=NOW) == build_demo_dataset(seed=11, now=NOW)


def test_dataset_other_seed_other_data() -> None:
    first = build_demo_dataset(seed=11, now=NOW)
    second = build_demo_dataset(seed=12, now=NOW)
    assert [s["telavox_call_id"] for s in first.sessions] != [s["telavox_call_id"] for s in second.sessions]


def test_dataset_ids_independent_of_now() -> None:
    earlier = build_demo_dataset(now=NOW - timedelta(days=3))
    assert {s["id"] for s in earlier.sessions} == {s["id"] for s in build_demo_dataset(now=NOW).sessions}


def test_dataset_default_count(dataset: DemoDataset) -> None:
    assert len(dataset.sessions) == DEFAULT_COUNT


def test_dataset_minimum_count() -> None:
    smallest = build_demo_dataset(count=MINIMUM_COUNT, now=NOW)
    assert set(smallest.categories.values()) == set(CATEGORY_NAMES)


def test_dataset_count_too_small() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_demo_dataset(count=MINIMUM_COUNT - 1, now=NOW)


def test_dataset_naive_now_rejected() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        build_demo_dataset(now=datetime(2026, 4, 3, 12, 30))


# Outcomes


def test_every_category_present(dataset: DemoDataset) -> None:
    assert set(dataset.categories.values()) == set(CATEGORY_NAMES)


def test_every_session_has_outcome(dataset: DemoDataset) -> None:
    assert set(dataset.expected) == {session["id"] for session in dataset.sessions}


def test_expected_outcomes_follow_core(dataset: DemoDataset) -> None:
    blocked, _ = blocked_numbers_by_e164(
        [(row["phone_number"], row["reason"]) for row in dataset.blocked_numbers], SETTINGS.default_region
    )
    mismatches = {}
    for session in dataset.sessions:
        status, reason = dataset.expected[session["id"]]
        computed = core_outcome(session, blocked)
        if (status, reason if status != NOT_ELIGIBLE else None) != computed:
            mismatches[dataset.categories[session["id"]]] = ((status, reason), computed)
    assert mismatches == {}


def test_skip_reasons_all_used(dataset: DemoDataset) -> None:
    reasons = set(dataset.expected_counts()["by_skip_reason"])
    assert reasons == {"hidden_number", "invalid_number", "unknown_direction", "blocked_number"}


def test_no_contact_reason_unused(dataset: DemoDataset) -> None:
    assert "no_contact" not in dataset.expected_counts()["by_skip_reason"]


def test_expected_counts_add_up(dataset: DemoDataset) -> None:
    counts = dataset.expected_counts()
    assert sum(counts["by_status"].values()) == len(dataset.sessions)
    assert sum(counts["by_skip_reason"].values()) == counts["by_status"][SKIPPED]


def test_matched_contacts_follow_core(dataset: DemoDataset) -> None:
    search_results = dataset.standin_seed["contacts"]
    mismatches = {}
    for session in dataset.sessions:
        session_id = session["id"]
        if session["hubspot_contact_id"] or session_id not in dataset.expected_contact_ids:
            continue
        counterparty = find_counterparty(session["direction"], session["from_number"], session["to_number"])
        assert isinstance(counterparty, Counterparty)
        match = choose_contact(confirm_contact_matches(counterparty.number, search_results, SETTINGS.default_region))
        chosen = match.contact_id if match else None
        if chosen != dataset.expected_contact_ids[session_id]:
            mismatches[dataset.categories[session_id]] = (dataset.expected_contact_ids[session_id], chosen)
    assert mismatches == {}


def test_new_contacts_unknown_to_hubspot(dataset: DemoDataset) -> None:
    search_results = dataset.standin_seed["contacts"]
    for session in sessions_in(dataset, "new_contact"):
        counterparty = find_counterparty(session["direction"], session["from_number"], session["to_number"])
        assert isinstance(counterparty, Counterparty)
        assert confirm_contact_matches(counterparty.number, search_results, SETTINGS.default_region) == []


def test_ambiguous_contact_has_two_matches(dataset: DemoDataset) -> None:
    session = sessions_in(dataset, "ambiguous_contact")[0]
    counterparty = find_counterparty(session["direction"], session["from_number"], session["to_number"])
    assert isinstance(counterparty, Counterparty)
    match = choose_contact(
        confirm_contact_matches(counterparty.number, dataset.standin_seed["contacts"], SETTINGS.default_region)
    )
    assert match is not None
    assert len(match.ambiguous_ids) == 2


# Ids and references


def test_session_ids_unique(dataset: DemoDataset) -> None:
    ids = [session["id"] for session in dataset.sessions]
    assert len(set(ids)) == len(ids)


def test_telavox_call_ids_unique(dataset: DemoDataset) -> None:
    call_ids = [session["telavox_call_id"] for session in dataset.sessions]
    assert len(set(call_ids)) == len(call_ids)


def test_row_ids_unique_across_tables(dataset: DemoDataset) -> None:
    ids = (
        [session["id"] for session in dataset.sessions]
        + [row["id"] for row in dataset.transcriptions]
        + [row["id"] for row in dataset.blocked_numbers]
    )
    assert len(set(ids)) == len(ids)


def test_hubspot_ids_unique(dataset: DemoDataset) -> None:
    seed = dataset.standin_seed
    ids = [entry["id"] for key in ("owners", "companies", "contacts", "deals") for entry in seed[key]]
    assert len(set(ids)) == len(ids)


def test_contact_emails_unique(dataset: DemoDataset) -> None:
    emails = [c["properties"]["email"].lower() for c in dataset.standin_seed["contacts"] if "email" in c["properties"]]
    assert len(set(emails)) == len(emails)


def test_prefilled_contacts_seeded(dataset: DemoDataset) -> None:
    seeded = {contact["id"] for contact in dataset.standin_seed["contacts"]}
    prefilled = {session["hubspot_contact_id"] for session in dataset.sessions if session["hubspot_contact_id"]}
    assert prefilled
    assert prefilled <= seeded


def test_prefilled_deals_seeded(dataset: DemoDataset) -> None:
    seeded = {deal["id"] for deal in dataset.standin_seed["deals"]}
    deal_ids = {session["hubspot_deal_id"] for session in dataset.sessions if session["hubspot_deal_id"]}
    assert deal_ids
    assert deal_ids <= seeded


def test_expected_contacts_seeded(dataset: DemoDataset) -> None:
    seeded = {contact["id"] for contact in dataset.standin_seed["contacts"]}
    assert set(dataset.expected_contact_ids.values()) <= seeded


def test_contact_primary_companies_seeded(dataset: DemoDataset) -> None:
    companies = {company["id"] for company in dataset.standin_seed["companies"]}
    contacts = dataset.standin_seed["contacts"]
    assert {contact["primary_company_id"] for contact in contacts} <= companies


def test_transcriptions_reference_sessions(dataset: DemoDataset) -> None:
    session_ids = {session["id"] for session in dataset.sessions}
    assert {row["call_session_id"] for row in dataset.transcriptions} <= session_ids


# Rows as the tables and the core read them


def test_sessions_validate_as_call_session(dataset: DemoDataset) -> None:
    for session in dataset.sessions:
        CallSession.model_validate(session)


def test_times_aware_and_past(dataset: DemoDataset) -> None:
    for session in dataset.sessions:
        for column in ("started_at", "answered_at", "ended_at"):
            moment = session[column]
            assert moment is None or moment.tzinfo is not None, column
            assert moment is None or moment <= NOW, column


def test_times_in_order(dataset: DemoDataset) -> None:
    for session in dataset.sessions:
        started, answered, ended = session["started_at"], session["answered_at"], session["ended_at"]
        assert answered is None or started <= answered
        assert ended is None or started <= ended
        assert ended is None or answered is None or answered <= ended


def test_ongoing_calls_not_ended(dataset: DemoDataset) -> None:
    ongoing = sessions_in(dataset, "call_ongoing")
    assert all(session["ended_at"] is None for session in ongoing)


def test_unanswered_calls_have_no_answer(dataset: DemoDataset) -> None:
    unanswered = sessions_in(dataset, "unanswered_inbound") + sessions_in(dataset, "unanswered_outbound")
    assert all(session["answered_at"] is None for session in unanswered)


# Cases of Telavox data that callsync must handle


@pytest.mark.parametrize("example", list(SWEDISH_FORMATS))
def test_swedish_format_present(dataset: DemoDataset, example: str) -> None:
    pattern = re.compile(SWEDISH_FORMATS[example])
    assert any(pattern.match(customer_side(session) or "") for session in dataset.sessions)


def test_mobile_ranges_present(dataset: DemoDataset) -> None:
    prefixes = set()
    for session in dataset.sessions:
        number = normalize_phone_number(customer_side(session))
        if isinstance(number, PhoneNumber) and number.region == "SE":
            prefixes.add("0" + number.national_significant_number[:2])
    assert set(MOBILE_PREFIXES) <= prefixes


@pytest.mark.parametrize(
    ("category", "region"), [("foreign_norway", "NO"), ("foreign_denmark", "DK"), ("foreign_finland", "FI")]
)
def test_foreign_numbers_keep_country(dataset: DemoDataset, category: str, region: str) -> None:
    for session in sessions_in(dataset, category):
        number = normalize_phone_number(customer_side(session))
        assert isinstance(number, PhoneNumber)
        assert number.region == region


def test_hidden_markers_present(dataset: DemoDataset) -> None:
    inbound_callers = {session["from_number"] for session in dataset.sessions if session["direction"] == "INBOUND"}
    assert {"", None, "anonymous", "unknown", "private", "+46"} <= inbound_callers


def test_direction_spellings_present(dataset: DemoDataset) -> None:
    directions = {session["direction"] for session in dataset.sessions}
    assert {"INBOUND", "OUTBOUND", "inbound", "outbound", "INCOMING", "OUTGOING", None} <= directions


def test_company_side_kinds_present(dataset: DemoDataset) -> None:
    inbound_to = {s["to_number"] for s in dataset.sessions if s["direction"] == "INBOUND"}
    outbound_from = {s["from_number"] for s in dataset.sessions if s["direction"] == "OUTBOUND"}
    assert inbound_to & set(COMPANY_EXTENSIONS)
    assert inbound_to & set(COMPANY_NUMBERS)
    assert outbound_from & set(COMPANY_EXTENSIONS)
    assert outbound_from & set(COMPANY_NUMBERS)


def test_extensions_not_numbers() -> None:
    for extension in COMPANY_EXTENSIONS:
        assert not isinstance(normalize_phone_number(extension), PhoneNumber), extension


def test_blocked_numbers_stored_differently(dataset: DemoDataset) -> None:
    stored = {row["phone_number"] for row in dataset.blocked_numbers}
    blocked_sessions = [s for s in dataset.sessions if dataset.expected[s["id"]] == (SKIPPED, "blocked_number")]
    assert blocked_sessions
    assert not {customer_side(session) for session in blocked_sessions} & stored


def test_blocklist_has_unusable_row(dataset: DemoDataset) -> None:
    _, unusable = blocked_numbers_by_e164(
        [(row["phone_number"], row["reason"]) for row in dataset.blocked_numbers], SETTINGS.default_region
    )
    assert len(unusable) == 1


def test_seeded_contact_numbers_valid(dataset: DemoDataset) -> None:
    for contact in dataset.standin_seed["contacts"]:
        for name in ("phone", "mobilephone"):
            raw = contact["properties"].get(name)
            assert raw is None or isinstance(normalize_phone_number(raw), PhoneNumber), raw


def test_contact_spellings_present(dataset: DemoDataset) -> None:
    stored = {
        contact["properties"].get(name)
        for contact in dataset.standin_seed["contacts"]
        for name in ("phone", "mobilephone")
    }
    assert any(re.match(r"^\+46 7\d-\d{3} \d{2} \d{2}$", raw or "") for raw in stored)
    assert any(re.match(r"^07\d-\d{7}$", raw or "") for raw in stored)


def test_owners_for_most_agents(dataset: DemoDataset) -> None:
    owner_emails = {owner["email"] for owner in dataset.standin_seed["owners"]}
    with_owner = [agent for agent in AGENTS if agent.agent_user_id.lower() in owner_emails]
    assert len(with_owner) > len(AGENTS) / 2


def test_agent_kinds_present(dataset: DemoDataset) -> None:
    kinds = {agent.agent_user_id: agent.kind for agent in AGENTS}
    used = Counter(kinds[session["agent_user_id"]] for session in dataset.sessions)
    assert used["owner"] > 0
    assert used["no_owner"] > 0
    assert used["not_email"] > 0


def test_recording_kinds_present(dataset: DemoDataset) -> None:
    urls = [session["recording_url"] for session in dataset.sessions]
    assert any(url and url.startswith("https://") for url in urls)
    assert any(url and url.startswith("http://") for url in urls)
    assert None in urls


def test_transcription_statuses_present(dataset: DemoDataset) -> None:
    statuses = {session["transcription_status"] for session in dataset.sessions}
    assert {"completed", "failed", "pending", "in_progress"} <= statuses


def test_swedish_letters_present(dataset: DemoDataset) -> None:
    names = " ".join(
        f"{c['properties']['firstname']} {c['properties']['lastname']}" for c in dataset.standin_seed["contacts"]
    )
    assert re.search("[åäöÅÄÖ]", names)
    assert any(re.search("[åäöÅÄÖ]", agent.first_name) for agent in AGENTS)


def test_transcript_languages_present(dataset: DemoDataset) -> None:
    languages = {row["language"] for row in dataset.transcriptions}
    assert {"sv", "en"} <= languages


# Transcript shapes


def test_long_transcript_body_cut(dataset: DemoDataset) -> None:
    session = sessions_in(dataset, "transcript_long")[0]
    row = newest_transcription(dataset, session["id"])
    assert row is not None
    assert len(row["full_text"]) > LONG_TRANSCRIPT_MIN_CHARS
    assert "[Transcript truncated" in call_body(dataset, session)


def test_html_transcript_escaped(dataset: DemoDataset) -> None:
    body = call_body(dataset, sessions_in(dataset, "transcript_html")[0])
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    assert "&amp;" in body


def test_incomplete_turns_tolerated(dataset: DemoDataset) -> None:
    session = sessions_in(dataset, "transcript_incomplete_turns")[0]
    row = newest_transcription(dataset, session["id"])
    assert row is not None
    labels = row["speaker_labels"]
    assert None in labels
    assert any(isinstance(label, dict) and "speaker" not in label for label in labels)
    assert any(isinstance(label, dict) and label.get("text") is None for label in labels)
    assert "<strong>Speaker:</strong>" in call_body(dataset, session)


def test_wrapped_turns_read(dataset: DemoDataset) -> None:
    session = sessions_in(dataset, "transcript_wrapped_turns")[0]
    body = call_body(dataset, session)
    assert "<strong>Customer:</strong>" in body
    assert "<strong>Agent:</strong>" in body


def test_unreadable_labels_fall_back(dataset: DemoDataset) -> None:
    session = sessions_in(dataset, "transcript_unreadable_labels")[0]
    body = call_body(dataset, session)
    assert "<strong>Agent:</strong>" not in body
    assert "No transcript" not in body


def test_superseded_newest_wins(dataset: DemoDataset) -> None:
    for session in sessions_in(dataset, "transcript_superseded"):
        rows = [row for row in dataset.transcriptions if row["call_session_id"] == session["id"]]
        newest = newest_transcription(dataset, session["id"])
        assert newest is not None
        assert len(rows) == 2
        assert len({row["created_at"] for row in rows}) == 2
        assert SUPERSEDED_DRAFT_MARK not in newest["full_text"]


def test_legacy_sessions_have_no_rows(dataset: DemoDataset) -> None:
    with_rows = {row["call_session_id"] for row in dataset.transcriptions}
    for session in sessions_in(dataset, "legacy_transcript_columns"):
        assert session["id"] not in with_rows
        assert session["transcript"]
        assert session["summary"]


def test_missing_transcripts_have_no_rows(dataset: DemoDataset) -> None:
    with_rows = {row["call_session_id"] for row in dataset.transcriptions}
    for category in ("transcription_failed", "transcription_pending_stale", "transcription_in_progress_stale"):
        for session in sessions_in(dataset, category):
            assert session["id"] not in with_rows, category
