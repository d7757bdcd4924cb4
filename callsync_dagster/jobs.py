"""The call workflow's job: fetch, enrich, upsert, associate, write-back, in one process."""

from dagster import in_process_executor, job

from callsync_dagster.ops.associate import associate
from callsync_dagster.ops.conversations import (
    associate_conversations,
    enrich_conversations,
    fetch_conversations,
    upsert_conversations,
    write_back_conversations,
)
from callsync_dagster.ops.enrich import enrich
from callsync_dagster.ops.fetch import fetch
from callsync_dagster.ops.reconcile import reconcile_day
from callsync_dagster.ops.upsert import upsert
from callsync_dagster.ops.write_back import write_back
from callsync_dagster.partitions import call_days

SYNC_CALLS_JOB_NAME = "sync_calls_to_hubspot"
BACKFILL_JOB_NAME = "backfill_calls_by_day"


# The steps share one HTTP client and one connection pool, and a run costs a few seconds less without a
# process per step. Parallelism comes from batching and concurrent runs instead.
@job(
    name=SYNC_CALLS_JOB_NAME,
    executor_def=in_process_executor,
    description=(
        "Sync finished Telavox calls to HubSpot: each claimed call session ends synced (a CALL on its contact "
        "and company), skipped with a reason, or failed with a message and, when retryable, a next attempt time."
    ),
    tags={"callsync/workflow": "calls"},
)
def sync_calls_to_hubspot() -> None:
    write_back(associate(upsert(enrich(fetch()))))


@job(
    name=BACKFILL_JOB_NAME,
    partitions_def=call_days,
    executor_def=in_process_executor,
    description=(
        "For one day of calls (by start time, in CALLSYNC_TIMEZONE): sync every due session still unsynced, "
        "confirm the day's synced CALLs still exist in HubSpot and requeue deleted ones, and count the day. "
        "Runs daily for the previous day; backfill any range from the UI or `dagster job backfill`."
    ),
    # A day can hold more calls than a sensor batch; the chunked HubSpot steps keep memory bounded, and the
    # leases are renewed chunk by chunk. Sessions beyond the batch are due, so the sensor takes them.
    config={"ops": {"fetch": {"config": {"max_batch_size": 2_000}}}},
    # A long day outlasts the instance's default maximum runtime (deploy/dagster.yaml), which is set for
    # sensor runs of 100 sessions.
    tags={"callsync/workflow": "calls", "callsync/trigger": "backfill", "dagster/max_runtime": "3600"},
)
def backfill_calls_by_day() -> None:
    reconcile_day(write_back(associate(upsert(enrich(fetch())))))


SYNC_CONVERSATIONS_JOB_NAME = "sync_conversations_to_hubspot"


@job(
    name=SYNC_CONVERSATIONS_JOB_NAME,
    executor_def=in_process_executor,
    description=(
        "The legacy workflow: sync finished ElevenLabs conversations to HubSpot as a contact, a deal in the "
        "configured pipeline, a note with the summary, insights and transcript, and a follow-up task when the "
        "sentiment is positive; one sync_history row per object written."
    ),
    tags={"callsync/workflow": "conversations"},
)
def sync_conversations_to_hubspot() -> None:
    write_back_conversations(associate_conversations(upsert_conversations(enrich_conversations(fetch_conversations()))))
