"""The benchmark's figures, correctness checks and targets, from the stand-in's records and the database."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from bench.config import REQUESTS_PER_TEN_SECONDS, SEARCHES_PER_SECOND
from bench.dataset import BenchDataset
from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number

GENERAL_REQUESTS_PER_SECOND = REQUESTS_PER_TEN_SECONDS / 10


@dataclass(frozen=True)
class SessionRow:
    telavox_call_id: str
    sync_status: str
    sync_reason_code: str | None
    hubspot_engagement_id: str | None


def read_session_rows(database_url: str, schema: str) -> list[SessionRow]:
    query = sql.SQL("SELECT telavox_call_id, sync_status, sync_reason_code, hubspot_engagement_id FROM {}").format(
        sql.Identifier(schema, "telavox_call_sessions")
    )
    with psycopg.connect(database_url) as conn:
        return [SessionRow(*row) for row in conn.execute(query).fetchall()]


def is_rate_limit_code(reason_code: str | None) -> bool:
    """Tell whether a sync_reason_code names a rate limit (callsync writes hubspot_rate_limit today)."""
    text = (reason_code or "").lower().replace("-", "_").replace(" ", "_")
    return "rate_limit" in text or "ratelimit" in text


# ---------------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------------


def is_search_route(route: str) -> bool:
    """Tell whether a stand-in route key ("POST /crm/v3/objects/{object_type}/search") is a search.

    HubSpot counts searches against their own per-second limit and every other request against the burst limit.
    """
    return route.rstrip("/").endswith("/search")


def compute_figures(
    rows: list[SessionRow],
    request_counts: dict[str, Any],
    loop: dict[str, Any],
    peak_rss_mb: float,
) -> dict[str, float | int | None]:
    """Compute a scenario's figures. Request counts include the requests that the stand-in rejected with 429."""
    statuses = Counter(row.sync_status for row in rows)
    synced = statuses["synced"]
    failed_by_429 = sum(1 for row in rows if row.sync_status == "failed" and is_rate_limit_code(row.sync_reason_code))

    by_route: dict[str, int] = request_counts.get("by_route", {})
    search_requests = sum(count for route, count in by_route.items() if is_search_route(route))
    general_requests = sum(count for route, count in by_route.items() if not is_search_route(route))
    total_requests = int(request_counts.get("total", general_requests + search_requests))
    responses_429 = int(request_counts.get("by_status", {}).get("429", 0))

    loop_seconds = float(loop["loop_seconds"])
    calls_per_second = synced / loop_seconds if loop_seconds > 0 else None
    allowed = allowed_calls_per_second(general_requests, search_requests, synced)
    utilisation = calls_per_second / allowed if calls_per_second is not None and allowed else None

    return {
        "sessions": len(rows),
        "sessions_synced": synced,
        "sessions_skipped": statuses["skipped"],
        "sessions_failed": statuses["failed"],
        "sessions_unfinished": statuses["pending"] + statuses["syncing"],
        "failed_by_429": failed_by_429,
        "hubspot_requests": total_requests,
        "general_requests": general_requests,
        "search_requests": search_requests,
        "responses_429": responses_429,
        "requests_per_synced_call": _ratio(total_requests, synced, 3),
        "general_requests_per_synced_call": _ratio(general_requests, synced, 3),
        "search_requests_per_synced_call": _ratio(search_requests, synced, 3),
        "dagster_runs": int(loop["runs"]),
        "loop_seconds": round(loop_seconds, 1),
        "calls_synced_per_second": None if calls_per_second is None else round(calls_per_second, 2),
        "allowed_calls_per_second": None if allowed is None else round(allowed, 2),
        "rate_limit_utilisation": None if utilisation is None else round(utilisation, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }


def allowed_calls_per_second(general_requests: int, search_requests: int, synced: int) -> float | None:
    """Return the synced calls per second the rate limits allow for this request mix, or None without data.

    allowed = min(10 general requests/s / general requests per synced call, 5 searches/s / searches per
    synced call). A kind of request the flow never sends sets no bound.
    """
    if synced == 0:
        return None
    bounds = []
    if general_requests:
        bounds.append(GENERAL_REQUESTS_PER_SECOND / (general_requests / synced))
    if search_requests:
        bounds.append(SEARCHES_PER_SECOND / (search_requests / synced))
    return min(bounds) if bounds else None


def _ratio(numerator: int, denominator: int, digits: int) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


# ---------------------------------------------------------------------------------------------------------------
# Correctness checks
# ---------------------------------------------------------------------------------------------------------------


def check_correctness(
    dataset: BenchDataset,
    rows: list[SessionRow],
    calls: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
    loop: dict[str, Any],
) -> list[str]:
    """Return one message per failed check; an empty list means the scenario synced correctly.

    The checks: one CALL per hs_call_external_id, one contact per phone number, and each synced session's
    CALL on the contact with its number. Each session must reach the outcome the dataset expects, but a
    failed session is reported as a figure, not here. No run of the job loop may fail.
    """
    failures: list[str] = []
    calls = [call for call in calls if not call.get("archived")]
    contacts = [contact for contact in contacts if not contact.get("archived")]

    calls_by_external_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        calls_by_external_id[call["properties"].get("hs_call_external_id") or ""].append(call)
    duplicated = {external_id: found for external_id, found in calls_by_external_id.items() if len(found) > 1}
    if duplicated:
        example = next(iter(duplicated))
        failures.append(
            f"{len(duplicated)} hs_call_external_id values have more than one CALL, "
            f"e.g. {example!r} on CALLs {[call['id'] for call in duplicated[example]]}"
        )

    contact_ids_by_number = contacts_by_number(contacts)
    shared = {number: ids for number, ids in contact_ids_by_number.items() if len(ids) > 1}
    if shared:
        example = next(iter(shared))
        failures.append(
            f"{len(shared)} phone numbers are on more than one contact, e.g. {example} on contacts {sorted(shared[example])}"
        )

    failures += _check_outcomes(dataset, rows, calls_by_external_id, contact_ids_by_number)

    if loop.get("failed_run_ids"):
        failures.append(f"Dagster runs failed: {', '.join(loop['failed_run_ids'])}")
    if loop.get("stopped_at_max_runs"):
        failures.append(f"the job loop stopped after {loop['max_runs']} runs with sessions still due")
    return failures


def contacts_by_number(contacts: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Map each E.164 number in a contact's phone or mobilephone to the ids of the contacts that have it."""
    found: dict[str, set[str]] = defaultdict(set)
    for contact in contacts:
        for prop in ("phone", "mobilephone"):
            number = normalize_phone_number(contact["properties"].get(prop))
            if isinstance(number, PhoneNumber):
                found[number.e164].add(str(contact["id"]))
    return found


def _check_outcomes(
    dataset: BenchDataset,
    rows: list[SessionRow],
    calls_by_external_id: dict[str, list[dict[str, Any]]],
    contact_ids_by_number: dict[str, set[str]],
) -> list[str]:
    rows_by_call_id = {row.telavox_call_id: row for row in rows}
    problems: Counter[str] = Counter()
    examples: dict[str, str] = {}

    def note(problem: str, telavox_call_id: str) -> None:
        problems[problem] += 1
        examples.setdefault(problem, telavox_call_id)

    for session in dataset.sessions:
        row = rows_by_call_id.get(session.telavox_call_id)
        if row is None:
            note("missing from the database", session.telavox_call_id)
            continue
        if session.reason_code is not None:
            if row.sync_status != "skipped" or row.sync_reason_code != session.reason_code:
                note(f"expected skipped ({session.reason_code}) but {row.sync_status}", session.telavox_call_id)
            continue
        if row.sync_status == "failed":
            continue
        if row.sync_status != "synced":
            note(f"expected synced but {row.sync_status}", session.telavox_call_id)
            continue

        found = calls_by_external_id.get(session.telavox_call_id, [])
        if not found:
            note("synced without a CALL in the stand-in", session.telavox_call_id)
            continue
        call = found[0]
        if row.hubspot_engagement_id != str(call["id"]):
            note("synced with a hubspot_engagement_id that is not its CALL", session.telavox_call_id)
        on_contacts = {str(link["id"]) for link in call.get("associations", {}).get("contacts", [])}
        expected_contacts = (
            {session.contact_id} if session.contact_id else contact_ids_by_number.get(session.e164 or "")
        )
        if not expected_contacts or not on_contacts & expected_contacts:
            note("CALL not on the contact with the session's number", session.telavox_call_id)

    return [
        f"{problem} ({count} of {len(dataset.sessions)} sessions, e.g. telavox_call_id {examples[problem]})"
        for problem, count in sorted(problems.items())
    ]


# ---------------------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scenario: str
    figure: str
    # "<=", ">=" or "<"
    comparison: str
    limit: float
    # Sessions and transcript size the target is set for. A smaller run only hints at the result.
    full_size_note: str = ""

    def is_met(self, value: float | int | None) -> bool | None:
        if value is None:
            return None
        if self.comparison == "<=":
            return value <= self.limit
        if self.comparison == ">=":
            return value >= self.limit
        return value < self.limit


TARGETS = (
    Target("many_numbers", "requests_per_synced_call", "<=", 0.10),
    Target("few_numbers", "requests_per_synced_call", "<=", 0.35),
    Target("per_call", "requests_per_synced_call", ">=", 3),
    Target("many_numbers", "rate_limit_utilisation", ">=", 0.8),
    Target("few_numbers", "rate_limit_utilisation", ">=", 0.8),
    Target("per_call", "rate_limit_utilisation", ">=", 0.8),
    Target("many_numbers", "failed_by_429", "<=", 0),
    Target("few_numbers", "failed_by_429", "<=", 0),
    Target("per_call", "failed_by_429", "<=", 0),
    Target("memory", "failed_by_429", "<=", 0),
    Target("memory", "peak_rss_mb", "<", 300, "set for 10,000 sessions with 50,000-character transcripts"),
)
