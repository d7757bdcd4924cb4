"""The conversation workflow's tables, read and written through the same PostgreSQL resource as the calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from callsync_dagster.core.conversations import Conversation, Insights, SyncType
from callsync_dagster.core.models import SessionOutcome, SyncLogEntry
from callsync_dagster.resources.postgres import PostgresResource

_COLUMNS = (
    "id",
    "conversation_id",
    "agent_id",
    "user_id",
    "status",
    "transcript",
    "summary",
    "metadata",
    "created_at",
    "updated_at",
    "hubspot_contact_id",
    "hubspot_deal_id",
    "hubspot_note_id",
    "hubspot_task_id",
    "hubspot_deal_requested_at",
    "hubspot_note_requested_at",
    "hubspot_task_requested_at",
    "sync_attempts",
)

# Must match the predicate of conversations_sync_due_idx (migration 0005) word for word, so the planner uses it.
_DUE_PREDICATE = sql.SQL(
    "status = 'done'"
    " AND (sync_status IN ('pending', 'syncing') OR (sync_status = 'failed' AND sync_next_attempt_at IS NOT NULL))"
)
_DUE_AT = sql.SQL("coalesce(sync_next_attempt_at, created_at)")
_CLAIM = sql.SQL(
    "sync_status = 'syncing', sync_claim_run_id = %(run_id)s, sync_claimed_at = now(),"
    " sync_next_attempt_at = now() + make_interval(mins => %(lease)s), sync_attempts = c.sync_attempts + 1,"
    " updated_at = now()"
)


class ConversationStore:
    """Claims, insights, create requests, outcomes and `sync_history` rows of the conversation workflow.

    The claims work as the call sessions' do: FOR UPDATE SKIP LOCKED and a lease that expires, so concurrent
    runs take disjoint conversations and a dead run's conversations come back.
    """

    def __init__(self, postgres: PostgresResource) -> None:
        self._postgres = postgres

    def _table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self._postgres.db_schema, name)

    def _columns(self, alias: str) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(alias, column) for column in _COLUMNS)

    # Reading and claiming

    def find_due(self, limit: int) -> list[Conversation]:
        """Return the first `limit` conversations due to sync, oldest first, without claiming them."""
        query = sql.SQL(
            "SELECT {columns} FROM {table} AS c WHERE {due} AND {due_at} <= now() ORDER BY {due_at} LIMIT %(limit)s"
        ).format(columns=self._columns("c"), table=self._table("conversations"), due=_DUE_PREDICATE, due_at=_DUE_AT)
        with self._postgres.connection() as conn:
            return [Conversation.model_validate(row) for row in conn.execute(query, {"limit": limit}).fetchall()]

    def claim_due(self, run_id: str, limit: int, lease_minutes: int) -> list[Conversation]:
        """Claim up to `limit` due conversations for `run_id`."""
        query = sql.SQL(
            "WITH due AS (SELECT id FROM {table} WHERE {due} AND {due_at} <= now()"
            " ORDER BY {due_at} LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
            "UPDATE {table} AS c SET {claim} FROM due WHERE c.id = due.id RETURNING {columns}"
        ).format(
            table=self._table("conversations"),
            due=_DUE_PREDICATE,
            due_at=_DUE_AT,
            claim=_CLAIM,
            columns=self._columns("c"),
        )
        params = {"run_id": run_id, "limit": limit, "lease": lease_minutes}
        with self._postgres.connection() as conn:
            return [Conversation.model_validate(row) for row in conn.execute(query, params).fetchall()]

    def claim_by_id(
        self, run_id: str, conversation_ids: Sequence[str], lease_minutes: int, only_due: bool
    ) -> list[Conversation]:
        """Claim the given conversations (by `conversation_id`) unless synced or under another run's live claim."""
        # A conversation that is not done has no final transcript or insights: never claimed, even by id.
        due_filter = (
            sql.SQL(" AND {due} AND {due_at} <= now()").format(due=_DUE_PREDICATE, due_at=_DUE_AT)
            if only_due
            else sql.SQL(" AND status = 'done'")
        )
        query = sql.SQL(
            "WITH wanted AS (SELECT id FROM {table} WHERE conversation_id = ANY(%(ids)s) AND sync_status <> 'synced'"
            " AND NOT (sync_status = 'syncing' AND sync_next_attempt_at > now()){due_filter} FOR UPDATE SKIP LOCKED) "
            "UPDATE {table} AS c SET {claim} FROM wanted WHERE c.id = wanted.id RETURNING {columns}"
        ).format(table=self._table("conversations"), due_filter=due_filter, claim=_CLAIM, columns=self._columns("c"))
        params = {"run_id": run_id, "ids": list(conversation_ids), "lease": lease_minutes}
        with self._postgres.connection() as conn:
            return [Conversation.model_validate(row) for row in conn.execute(query, params).fetchall()]

    def find_by_id(self, conversation_ids: Sequence[str]) -> list[Conversation]:
        """Read conversations by `conversation_id` without claiming them (dry runs)."""
        query = sql.SQL("SELECT {columns} FROM {table} AS c WHERE conversation_id = ANY(%(ids)s)").format(
            columns=self._columns("c"), table=self._table("conversations")
        )
        with self._postgres.connection() as conn:
            return [
                Conversation.model_validate(row)
                for row in conn.execute(query, {"ids": list(conversation_ids)}).fetchall()
            ]

    def load_insights(self, conversation_ids: Sequence[str]) -> dict[str, Insights]:
        """Return the newest insights row of each conversation that has one."""
        query = sql.SQL(
            "SELECT DISTINCT ON (conversation_id) conversation_id, sentiment, key_points, deal_stage,"
            " competitor_mentions, next_steps, created_at FROM {} WHERE conversation_id = ANY(%(ids)s)"
            " ORDER BY conversation_id, created_at DESC"
        ).format(self._table("insights"))
        with self._postgres.connection() as conn:
            rows = conn.execute(query, {"ids": list(conversation_ids)}).fetchall()
        return {row["conversation_id"]: Insights.model_validate(row) for row in rows}

    # HubSpot creates

    def record_request(self, conversation: UUID, run_id: str, kind: SyncType, lease_minutes: int) -> bool:
        """Before a deal, note or task create: stamp its request time and renew the lease; False if the claim is lost."""
        column = sql.Identifier(f"hubspot_{kind.value}_requested_at")
        query = sql.SQL(
            "UPDATE {table} SET {column} = now(), sync_next_attempt_at = now() + make_interval(mins => %(lease)s)"
            " WHERE id = %(id)s AND sync_claim_run_id = %(run_id)s AND sync_status = 'syncing'"
        ).format(table=self._table("conversations"), column=column)
        with self._postgres.connection() as conn:
            return conn.execute(query, {"id": conversation, "run_id": run_id, "lease": lease_minutes}).rowcount == 1

    def store_object_id(
        self, conversation: Conversation, kind: SyncType, hubspot_id: str, entry: SyncLogEntry, run_id: str
    ) -> None:
        """Save a created or found object's id and its `sync_history` row at once, in one transaction.

        Done the moment HubSpot returns the id, so a crash or a lost claim before write-back loses neither
        the id nor the audit row.
        """
        column = sql.Identifier(f"hubspot_{kind.value}_id")
        query = sql.SQL("UPDATE {table} SET {column} = coalesce({column}, %(hubspot_id)s) WHERE id = %(id)s").format(
            table=self._table("conversations"), column=column
        )
        with self._postgres.connection() as conn:
            conn.execute(query, {"id": conversation.id, "hubspot_id": hubspot_id})
            self._insert_history(conn, conversation.conversation_id, run_id, [entry])

    def insert_history(self, conversation: Conversation, run_id: str, log_entries: Sequence[SyncLogEntry]) -> None:
        """Write `sync_history` rows without touching the conversation (a run that lost its claim)."""
        with self._postgres.connection() as conn:
            self._insert_history(conn, conversation.conversation_id, run_id, log_entries)

    def _insert_history(
        self, conn: Any, conversation_id: str, run_id: str, log_entries: Sequence[SyncLogEntry]
    ) -> None:
        if not log_entries:
            return
        # clock_timestamp, not now(): the rows of one transaction keep the order they were written in.
        history = sql.SQL(
            "INSERT INTO {} (conversation_id, sync_type, hubspot_id, data, status, error_message, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, clock_timestamp())"
        ).format(self._table("sync_history"))
        with conn.cursor() as cursor:
            cursor.executemany(
                history,
                [
                    (
                        conversation_id,
                        history_type(entry.action),
                        entry.hubspot_object_id,
                        Jsonb({"action": entry.action, "run_id": run_id, **(entry.detail or {})}),
                        "failed" if entry.error else "success",
                        entry.error,
                    )
                    for entry in log_entries
                ],
            )

    def clear_request(self, conversation: UUID, kind: SyncType) -> None:
        """Forget the request time of a create HubSpot rejected outright: nothing was created."""
        column = sql.Identifier(f"hubspot_{kind.value}_requested_at")
        query = sql.SQL("UPDATE {table} SET {column} = NULL WHERE id = %(id)s").format(
            table=self._table("conversations"), column=column
        )
        with self._postgres.connection() as conn:
            conn.execute(query, {"id": conversation})

    def release_claims_of_run(self, run_id: str, reason: str, max_attempts: int, retry_in_minutes: float) -> int:
        """Fail the conversations a failed or cancelled run still holds, as the call sessions' release does."""
        query = sql.SQL(
            "UPDATE {} SET sync_status = 'failed', sync_reason_code = 'run_failed', sync_reason = %(reason)s,"
            " sync_claim_run_id = NULL, sync_claimed_at = NULL, updated_at = now(),"
            " sync_next_attempt_at = CASE WHEN sync_attempts >= %(max_attempts)s THEN NULL"
            "   ELSE now() + make_interval(secs => %(retry)s * 60) END"
            " WHERE sync_claim_run_id = %(run_id)s AND sync_status = 'syncing'"
        ).format(self._table("conversations"))
        params = {"run_id": run_id, "reason": reason, "max_attempts": max_attempts, "retry": retry_in_minutes}
        with self._postgres.connection() as conn:
            return conn.execute(query, params).rowcount

    # Writing the outcome

    def record_outcome(
        self,
        conversation: Conversation,
        run_id: str,
        outcome: SessionOutcome,
        log_entries: Sequence[SyncLogEntry],
        next_attempt_at: datetime | None,
    ) -> bool:
        """Write the conversation's outcome and one `sync_history` row per logged action, in one transaction.

        Returns False when the claim was lost; the history rows are written either way.
        """
        query = sql.SQL(
            "UPDATE {table} SET sync_status = %(status)s, sync_reason = %(reason)s, sync_reason_code = %(reason_code)s,"
            " sync_next_attempt_at = %(next_attempt_at)s, sync_claim_run_id = NULL, sync_claimed_at = NULL,"
            " hubspot_contact_id = coalesce(%(contact_id)s, hubspot_contact_id),"
            " sync_attempts = CASE WHEN %(charge_attempt)s THEN sync_attempts ELSE greatest(sync_attempts - 1, 0) END,"
            " synced_at = CASE WHEN %(status)s = 'synced' THEN now() ELSE synced_at END, updated_at = now()"
            " WHERE id = %(id)s AND sync_claim_run_id = %(run_id)s"
        ).format(table=self._table("conversations"))
        params = {
            "id": conversation.id,
            "run_id": run_id,
            "status": outcome.status.value,
            "reason": outcome.reason,
            "reason_code": outcome.reason_code,
            "next_attempt_at": next_attempt_at,
            "contact_id": outcome.hubspot_contact_id,
            "charge_attempt": outcome.charge_attempt,
        }
        with self._postgres.connection() as conn:
            updated = conn.execute(query, params).rowcount == 1
            self._insert_history(conn, conversation.conversation_id, run_id, log_entries)
        return updated


def history_type(action: str) -> str:
    """Return the `sync_history.sync_type` of a logged action: the object it concerns, or `conversation`."""
    kind = action.split("_", 1)[0]
    return kind if kind in {member.value for member in SyncType} else "conversation"
