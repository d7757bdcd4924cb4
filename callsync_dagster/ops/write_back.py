"""write-back: record every session's outcome in the database and summarise the run."""

from collections import Counter
from datetime import UTC, datetime

import psycopg
from dagster import Failure, MetadataValue, OpExecutionContext, Output, op

from callsync_dagster.core.models import SyncStatus
from callsync_dagster.core.retry_policy import retry_time
from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import OutcomeToWrite, PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

# Outcomes written per transaction: few round trips, and a failed chunk is retried one session at a time.
_WRITE_CHUNK = 500
# The run's metadata table shows this many sessions; the sync log has them all.
_TABLE_ROWS = 200


@op(description="Write each session's status, HubSpot ids and sync log rows; end with a summary of the run.")
def write_back(
    context: OpExecutionContext,
    batch: CallSyncBatch,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> Output[dict[str, int]]:
    now = datetime.now(UTC)
    claims_lost = sum(1 for item in batch.items if item.claim_lost)
    write_errors = 0

    to_write: list[tuple[CallSyncItem, OutcomeToWrite]] = []
    for item in batch.items:
        if item.claim_lost:
            continue
        if item.outcome is None:
            # Every op either finishes a session or leaves it open for the next. An open session here is a
            # bug, so it is failed rather than left claimed.
            item.fail("internal", "no step decided this session's outcome", retryable=True)
        assert item.outcome is not None
        retry_at = retry_time(
            item.outcome,
            item.session.sync_attempts,
            now,
            settings.max_attempts,
            settings.retry_initial_delay_minutes,
            settings.retry_max_delay_minutes,
        )
        if item.outcome.status is not SyncStatus.SYNCED:
            context.log.info(
                "Call session %s %s: %s%s",
                item.session.id,
                item.outcome.status.value,
                item.outcome.reason,
                f" (next attempt {retry_at.isoformat()})" if retry_at else "",
            )
        to_write.append((item, OutcomeToWrite(item.session.id, item.outcome, item.log, retry_at)))

    if not batch.dry_run:
        for start in range(0, len(to_write), _WRITE_CHUNK):
            chunk = to_write[start : start + _WRITE_CHUNK]
            try:
                written = postgres.record_outcomes(batch.run_id, [entry for _, entry in chunk])
            except psycopg.Error as error:
                # One bad row must not lose the others: write this chunk's sessions one by one.
                context.log.warning(
                    "Writing %d outcomes at once failed (%s); writing them one by one", len(chunk), error
                )
                written = set()
                for item, entry in chunk:
                    try:
                        if postgres.record_outcome(
                            entry.session_id, batch.run_id, entry.outcome, entry.log_entries, entry.next_attempt_at
                        ):
                            written.add(entry.session_id)
                    except psycopg.Error as single_error:
                        # The session comes back when its lease expires.
                        write_errors += 1
                        context.log.error(
                            "Call session %s: writing its outcome failed: %s", item.session.id, single_error
                        )
                        written.add(entry.session_id)  # not a lost claim
            for item, entry in chunk:
                if entry.session_id not in written:
                    claims_lost += 1
                    context.log.warning(
                        "Call session %s: the claim expired and another run took it; its outcome here was not written",
                        item.session.id,
                    )

    counts = Counter(item.outcome.status.value for item in batch.items if item.outcome)
    skip_reasons = Counter(
        item.outcome.reason_code or "unspecified"
        for item in batch.items
        if item.outcome and item.outcome.status is SyncStatus.SKIPPED
    )
    totals = hubspot.request_totals()
    summary = {
        "sessions": len(batch.items),
        "synced": counts[SyncStatus.SYNCED.value],
        "skipped": counts[SyncStatus.SKIPPED.value],
        "failed": counts[SyncStatus.FAILED.value],
        "claims_lost": claims_lost,
        "outcome_write_errors": write_errors,
        "hubspot_requests": totals["requests"],
        "hubspot_searches": totals["searches"],
        "hubspot_429s": totals["rate_limited"],
    }
    context.log.info(
        "%sSync run summary: %s; skipped by reason: %s",
        "DRY RUN, nothing written. " if batch.dry_run else "",
        " ".join(f"{name}={value}" for name, value in summary.items()),
        dict(skip_reasons) or "none",
    )

    if write_errors:
        raise Failure(
            description=f"{write_errors} session outcomes could not be written to the database; their sessions "
            "are retried when their claims expire. See the errors above.",
            metadata={"outcome_write_errors": write_errors},
        )
    if batch.paused_reason:
        context.log.warning("The run stopped early and its open sessions wait: %s", batch.paused_reason)
    if batch.stop_reason:
        raise Failure(
            description=f"HubSpot rejected the credentials, so the run stopped: {batch.stop_reason}",
            metadata={"sessions_failed": summary["failed"]},
        )

    return Output(
        summary,
        metadata={
            **{name: MetadataValue.int(value) for name, value in summary.items()},
            "dry_run": MetadataValue.bool(batch.dry_run),
            "skipped_by_reason": MetadataValue.json(dict(skip_reasons)),
            "sessions_table": MetadataValue.md(sessions_table(batch.items)),
        },
    )


def status_text(item: CallSyncItem) -> str:
    if item.claim_lost:
        return "claim lost to another run"
    return item.outcome.status.value if item.outcome else ""


def sessions_table(items: list[CallSyncItem]) -> str:
    """Render the run's sessions and their HubSpot ids as a Markdown table for the Dagster UI."""
    lines = [
        "| call session | Telavox call id | status | contact | company | CALL | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in items[:_TABLE_ROWS]:
        outcome = item.outcome
        reason = (outcome.reason or "").replace("|", "/") if outcome else ""
        lines.append(
            f"| {item.session.id} | {item.session.telavox_call_id} | {status_text(item)} "
            f"| {item.contact_id or ''} | {item.company_id or ''} | {item.engagement_id or ''} | {reason[:200]} |"
        )
    if len(items) > _TABLE_ROWS:
        lines.append(f"| {len(items) - _TABLE_ROWS} more sessions: see callsync_sync_log | | | | | | |")
    return "\n".join(lines)
