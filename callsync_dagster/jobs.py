"""The call workflow's job: fetch, enrich, upsert, associate, write-back, in one process."""

from dagster import in_process_executor, job

from callsync_dagster.ops.associate import associate
from callsync_dagster.ops.enrich import enrich
from callsync_dagster.ops.fetch import fetch
from callsync_dagster.ops.upsert import upsert
from callsync_dagster.ops.write_back import write_back

SYNC_CALLS_JOB_NAME = "sync_calls_to_hubspot"


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
