"""fetch: claim the call sessions this run will sync."""

import uuid

from dagster import Config, OpExecutionContext, op
from pydantic import Field, field_validator

from callsync_dagster.core.sync_item import CallSyncBatch, CallSyncItem
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings


class FetchConfig(Config):
    """Run config of the call sync job; set under ops.fetch.config in the launchpad."""

    session_ids: list[str] = Field(
        default_factory=list,
        description="Sync exactly these call session ids (UUIDs), ignoring retry delays. Empty: claim due sessions.",
    )
    max_batch_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Maximum number of due sessions this run claims; explicit session_ids are all taken.",
    )
    only_due: bool = Field(
        default=False,
        description="Claim the given session_ids only while they are due (the sensor's runs). Leave it off to "
        "sync a session now, ignoring its retry delay.",
    )
    dry_run: bool = Field(
        default=False,
        description="Claim nothing and write nothing to HubSpot or the database; log the payloads instead.",
    )
    replay_failed: bool = Field(
        default=False,
        description="Make every failed session due again with a fresh attempt count, then claim up to "
        "max_batch_size due sessions; the sensor takes the rest.",
    )

    @field_validator("session_ids")
    @classmethod
    def _check_session_ids(cls, values: list[str]) -> list[str]:
        normalized = []
        for value in values:
            try:
                normalized.append(str(uuid.UUID(value.strip())))
            except ValueError as error:
                raise ValueError(
                    f"Invalid call session id {value!r}: expected the UUID from telavox_call_sessions.id"
                ) from error
        return normalized


@op(description="Claim up to max_batch_size due call sessions (or the given ids) for this run.")
def fetch(
    context: OpExecutionContext, config: FetchConfig, postgres: PostgresResource, settings: CallSyncSettings
) -> CallSyncBatch:
    run_id = context.run_id

    if config.dry_run:
        if config.session_ids:
            sessions = postgres.find_sessions_by_id(config.session_ids)
        else:
            sessions = postgres.find_due_sessions(config.max_batch_size, settings.transcript_wait_minutes).sessions
        context.log.info("Dry run: read %d call sessions without claiming them", len(sessions))

    elif config.session_ids:
        claim = postgres.claim_sessions_by_id(
            run_id,
            config.session_ids,
            settings.claim_lease_minutes,
            only_due=config.only_due,
            transcript_wait_minutes=settings.transcript_wait_minutes,
        )
        sessions = claim.sessions
        for unclaimed in claim.unclaimed:
            context.log.warning("Call session %s was not claimed: %s", unclaimed.session_id, unclaimed.reason)
        context.log.info("Claimed %d of %d requested call sessions", len(sessions), len(config.session_ids))

    else:
        if config.replay_failed:
            requeued = postgres.requeue_failed_sessions(None, requested_by=f"run {run_id}")
            context.log.info("Requeued %d failed call sessions for a replay", len(requeued))
        # A run of the daily backfill job claims only the calls that started on its day.
        window = None
        if context.has_partition_key:
            window = (context.partition_time_window.start, context.partition_time_window.end)
        sessions = postgres.claim_due_sessions(
            run_id,
            config.max_batch_size,
            settings.transcript_wait_minutes,
            settings.claim_lease_minutes,
            settings.max_attempts,
            started_between=window,
        )
        day = f" of calls started on {context.partition_key}" if window else ""
        context.log.info("Claimed %d due call sessions%s", len(sessions), day)

    return CallSyncBatch(run_id=run_id, dry_run=config.dry_run, items=[CallSyncItem(session) for session in sessions])
