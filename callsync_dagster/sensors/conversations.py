"""The sensor that launches a conversation sync run when ElevenLabs conversations are done and unsynced."""

import time

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from callsync_dagster.environment import int_from_environment
from callsync_dagster.jobs import sync_conversations_to_hubspot
from callsync_dagster.resources.conversation_store import ConversationStore
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from callsync_dagster.sensors.run_keys import run_key

MAX_CONVERSATIONS_PER_RUN = 50


@sensor(
    job=sync_conversations_to_hubspot,
    minimum_interval_seconds=int_from_environment("CALLSYNC_SENSOR_INTERVAL_SECONDS", 30),
    default_status=DefaultSensorStatus.RUNNING,
    description="Fires when conversations are done and due to sync; one run per batch of up to 50.",
)
def conversations_due_sensor(
    context: SensorEvaluationContext, postgres: PostgresResource, settings: CallSyncSettings
) -> SensorResult | SkipReason:
    # Reads the database only, as the call sessions' sensor does.
    due = ConversationStore(postgres).find_due(MAX_CONVERSATIONS_PER_RUN)
    if not due:
        return SkipReason("No conversations are due.")
    key = run_key(
        "conversations",
        [
            f"{conversation.conversation_id}:{conversation.sync_attempts}:"
            f"{conversation.updated_at.isoformat() if conversation.updated_at else ''}"
            for conversation in due
        ],
        settings.claim_lease_minutes,
        time.time(),
    )
    ids = [conversation.conversation_id for conversation in due]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=key,
                run_config={"ops": {"fetch_conversations": {"config": {"conversation_ids": ids, "only_due": True}}}},
                tags={"callsync/trigger": "sensor", "callsync/conversations": str(len(ids))},
            )
        ]
    )
