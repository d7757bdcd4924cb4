"""reconcile: check a day's synced CALLs still exist in HubSpot, and count the day's outcomes."""

from collections import defaultdict
from typing import TYPE_CHECKING
from uuid import UUID

from dagster import Config, MetadataValue, OpExecutionContext, Output, op
from pydantic import Field

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings

if TYPE_CHECKING:
    import pandas as pd


class ReconcileConfig(Config):
    requeue_deleted: bool = Field(
        default=True,
        description="Make a synced session pending again when its CALL was deleted in HubSpot, so the next run "
        "logs it again. Off: only count and log such sessions.",
    )


@op(description="Confirm that the day's synced CALLs still exist (batch reads), requeue deleted ones, count the day.")
def reconcile_day(
    context: OpExecutionContext,
    run_summary: dict[str, int],
    config: ReconcileConfig,
    postgres: PostgresResource,
    hubspot: HubSpotResource,
    settings: CallSyncSettings,
) -> Output[dict[str, int]]:
    window = context.partition_time_window
    synced = postgres.synced_calls_between(window.start, window.end)

    # 1. Which CALLs are gone, read 100 at a time per portal.
    by_portal: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for row in synced:
        by_portal[hubspot.portal_of(row["hubspot_portal_id"])].append(row)
    deleted: list[UUID] = []
    unchecked = 0
    for portal, rows in by_portal.items():
        client = hubspot.client_for(portal)
        if client is None:
            unchecked += len(rows)
            context.log.warning(
                "%d synced sessions of portal %s not checked: %s",
                len(rows),
                portal,
                hubspot.missing_token_reason(portal),
            )
            continue
        for start in range(0, len(rows), hs.BATCH_MAX_INPUTS):
            chunk = rows[start : start + hs.BATCH_MAX_INPUTS]
            found = client.batch_read(
                "calls", [row["hubspot_engagement_id"] for row in chunk], [hs.CALL_EXTERNAL_ID_PROPERTY]
            )
            existing = {str(call["id"]) for call in found.results}
            deleted += [row["id"] for row in chunk if row["hubspot_engagement_id"] not in existing]

    # 2. Requeue them, or only report them.
    for session_id in deleted:
        context.log.warning("Call session %s: its CALL was deleted in HubSpot", session_id)
    requeued = postgres.requeue_deleted_calls(deleted, context.run_id) if config.requeue_deleted else 0

    # 3. The day's counts. pandas is imported here, not with the module: every sync run loads the job's
    # modules, and pandas would add about 50 MB to each run's memory for a table only this op draws.
    import pandas as pd

    outcomes = pd.DataFrame(
        postgres.day_outcome_rows(window.start, window.end, settings.transcript_wait_minutes),
        columns=["ended", "eligible", "sync_status", "sync_reason_code"],
    )
    counts = day_counts(outcomes)
    counts.update({"calls_checked": len(synced) - unchecked, "calls_deleted": len(deleted), "requeued": requeued})
    # What this run did, beside the day's totals.
    counts.update({f"run_{name}": value for name, value in run_summary.items()})
    context.log.info("Day %s: %s", context.partition_key, " ".join(f"{name}={value}" for name, value in counts.items()))
    skipped = outcomes[outcomes["sync_status"] == "skipped"]
    by_reason = skipped.groupby(skipped["sync_reason_code"].fillna("unspecified")).size()
    table = pd.DataFrame({"count": counts}).rename_axis("figure")
    return Output(
        counts,
        metadata={
            **{name: MetadataValue.int(value) for name, value in counts.items()},
            "day": MetadataValue.text(context.partition_key),
            "day_counts": MetadataValue.md(table.to_markdown()),
            "skipped_by_reason": MetadataValue.md(
                by_reason.rename("count").rename_axis("reason").to_frame().to_markdown() if len(by_reason) else "none"
            ),
        },
    )


def day_counts(outcomes: "pd.DataFrame") -> dict[str, int]:
    """Count a day's sessions: ended, eligible, synced, skipped, failed and still open."""
    statuses = outcomes["sync_status"].value_counts()
    return {
        "sessions": len(outcomes),
        "ended": int(outcomes["ended"].sum()),
        "eligible": int(outcomes["eligible"].sum()),
        "synced": int(statuses.get("synced", 0)),
        "skipped": int(statuses.get("skipped", 0)),
        "failed": int(statuses.get("failed", 0)),
        "open": int(statuses.get("pending", 0) + statuses.get("syncing", 0)),
    }
