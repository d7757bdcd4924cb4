"""Supabase/PostgreSQL access: claiming call sessions, reading transcripts, writing outcomes."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from dagster import ConfigurableResource, InitResourceContext
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import Field, PrivateAttr, field_validator

from callsync_dagster.core.models import CallSession, SessionOutcome, SyncLogEntry, SyncStatus, Transcription
from callsync_dagster.db.schema_name import validate_schema_name

_SESSION_COLUMNS = (
    "id",
    "telavox_call_id",
    "telavox_org_id",
    "hubspot_portal_id",
    "direction",
    "from_number",
    "to_number",
    "agent_user_id",
    "hubspot_contact_id",
    "hubspot_deal_id",
    "started_at",
    "answered_at",
    "ended_at",
    "recording_url",
    "transcription_status",
    "hubspot_engagement_id",
    "hubspot_call_requested_at",
    "sync_attempts",
    "updated_at",
)

# Must match the predicate of telavox_call_sessions_sync_due_idx word for word, or the planner cannot
# use that partial index.
_DUE_PREDICATE = sql.SQL(
    "ended_at IS NOT NULL"
    " AND (sync_status IN ('pending', 'syncing') OR (sync_status = 'failed' AND sync_next_attempt_at IS NOT NULL))"
)
_DUE_AT = sql.SQL("coalesce(sync_next_attempt_at, ended_at)")

# A session whose transcription has not finished is held back for the configured wait; after that it is
# synced without a transcript.
_TRANSCRIPT_READY = sql.SQL(
    "(transcription_status IN ('completed', 'failed') OR ended_at <= now() - make_interval(mins => %(wait)s))"
)


_POOL_LOCK = threading.Lock()

# The most queued rows the sensor's waiting counts look at.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class UnclaimedSession:
    """A session that was asked for by id but not claimed, and why."""

    session_id: str
    reason: str


@dataclass(frozen=True)
class ClaimResult:
    sessions: list[CallSession]
    unclaimed: list[UnclaimedSession]


@dataclass(frozen=True)
class OutcomeToWrite:
    """One session's outcome, its sync log rows and its next attempt time, for `record_outcomes`."""

    session_id: UUID
    outcome: SessionOutcome
    log_entries: Sequence[SyncLogEntry]
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class ContactNumber:
    """A row of callsync_contact_numbers: a number's contact, or a create of one in flight."""

    phone_e164: str
    state: str
    contact_id: str | None
    run_id: str | None
    requested_at: datetime | None


@dataclass(frozen=True)
class DueSessions:
    """The sensor's view of the queue: the first due sessions and counts of the work still waiting."""

    sessions: list[CallSession]
    waiting_for_transcript: int
    waiting_for_retry: int
    claimed: int


class PostgresResource(ConfigurableResource):
    """The Supabase/PostgreSQL database holding the call sessions, via a psycopg 3 connection pool.

    Server-side prepared statements are disabled and every table name is schema-qualified, so the
    resource also works through Supabase's transaction-mode pooler (port 6543), which keeps no session
    state.
    """

    database_url: str = Field(description="libpq connection string or URL (set from CALLSYNC_DATABASE_URL).")
    db_schema: str = Field(default="public", description="Schema holding the call tables, e.g. call_intelligence.")
    pool_max_size: int = Field(default=4, description="Maximum connections this process keeps open.")
    connect_timeout_seconds: float = Field(
        default=15.0, gt=0, description="How long to wait for the first database connection before failing."
    )

    _pool: ConnectionPool | None = PrivateAttr(default=None)

    @field_validator("db_schema")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        return validate_schema_name(value)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._open_pool()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _open_pool(self) -> ConnectionPool:
        # The lock keeps threads that share one resource (a sensor, a test) from opening a pool each. It is
        # module-wide because Dagster copies resources, and a lock cannot be copied.
        with _POOL_LOCK:
            return self._open_pool_locked()

    def _open_pool_locked(self) -> ConnectionPool:
        if self._pool is None:
            pool = ConnectionPool(
                self.database_url,
                min_size=1,
                max_size=self.pool_max_size,
                kwargs={"prepare_threshold": None, "row_factory": dict_row, "connect_timeout": 10},
                open=True,
                name="callsync",
            )
            # Without this wait a bad URL surfaces only as the pool's generic timeout, after 30 s.
            try:
                pool.wait(timeout=self.connect_timeout_seconds)
            except PoolTimeout:
                pool.close()
                raise ConnectionError(
                    f"Could not connect to PostgreSQL at {describe_database(self.database_url)} within "
                    f"{self.connect_timeout_seconds:g} s: check CALLSYNC_DATABASE_URL and that the server "
                    "accepts connections from this machine."
                ) from None
            self._pool = pool
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """Yield a pooled connection inside a transaction that commits on success."""
        with self._open_pool().connection() as conn:
            yield conn  # type: ignore[misc]

    def _table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.db_schema, name)

    # Reading

    def find_due_sessions(self, limit: int, transcript_wait_minutes: int) -> DueSessions:
        """Return the first `limit` sessions ready to sync, oldest due first, without claiming them.

        The sensor and dry runs use this; it is bounded by `limit` and walks the partial index.
        """
        sessions_table = self._table("telavox_call_sessions")
        query = sql.SQL(
            "SELECT {columns} FROM {table} WHERE {due} AND {due_at} <= now() AND {ready} ORDER BY {due_at} LIMIT %(limit)s"
        ).format(
            columns=_session_columns(),
            table=sessions_table,
            due=_DUE_PREDICATE,
            due_at=_DUE_AT,
            ready=_TRANSCRIPT_READY,
        )
        # The counts read at most COUNT_CAP rows of the partial index, so a large backlog cannot slow a
        # sensor tick down. Past that many queued rows they are lower bounds.
        counts_query = sql.SQL(
            "SELECT"
            " count(*) FILTER (WHERE sync_status = 'pending' AND NOT {ready}) AS waiting_for_transcript,"
            " count(*) FILTER (WHERE sync_status = 'failed' AND {due_at} > now()) AS waiting_for_retry,"
            " count(*) FILTER (WHERE sync_status = 'syncing' AND {due_at} > now()) AS claimed"
            " FROM (SELECT sync_status, sync_next_attempt_at, ended_at, transcription_status FROM {table}"
            "       WHERE {due} LIMIT %(count_cap)s) AS queued"
        ).format(table=sessions_table, due=_DUE_PREDICATE, due_at=_DUE_AT, ready=_TRANSCRIPT_READY)

        params = {"limit": limit, "wait": transcript_wait_minutes, "count_cap": COUNT_CAP}
        with self.connection() as conn:
            rows = conn.execute(query, params).fetchall()
            counts = conn.execute(counts_query, params).fetchone() or {}
        return DueSessions(
            sessions=[CallSession.model_validate(row) for row in rows],
            waiting_for_transcript=int(counts.get("waiting_for_transcript") or 0),
            waiting_for_retry=int(counts.get("waiting_for_retry") or 0),
            claimed=int(counts.get("claimed") or 0),
        )

    def find_sessions_by_id(self, session_ids: Sequence[str]) -> list[CallSession]:
        """Read sessions by id without claiming them (dry runs)."""
        query = sql.SQL("SELECT {columns} FROM {table} WHERE id = ANY(%(ids)s::uuid[]) ORDER BY started_at").format(
            columns=_session_columns(), table=self._table("telavox_call_sessions")
        )
        with self.connection() as conn:
            rows = conn.execute(query, {"ids": list(session_ids)}).fetchall()
        return [CallSession.model_validate(row) for row in rows]

    def load_transcriptions(self, session_ids: Sequence[UUID]) -> dict[UUID, Transcription]:
        """Return the newest transcription per session, falling back to the session's own columns."""
        if not session_ids:
            return {}
        query = sql.SQL(
            "SELECT s.id AS session_id, t.full_text, t.speaker_labels, t.summary AS t_summary, t.language,"
            " t.call_session_id IS NOT NULL AS has_row, s.transcript, s.summary AS s_summary"
            " FROM {sessions} s"
            " LEFT JOIN LATERAL ("
            "   SELECT * FROM {transcriptions} WHERE call_session_id = s.id ORDER BY created_at DESC, id DESC LIMIT 1"
            " ) t ON true"
            " WHERE s.id = ANY(%(ids)s::uuid[])"
        ).format(sessions=self._table("telavox_call_sessions"), transcriptions=self._table("transcriptions"))
        with self.connection() as conn:
            rows = conn.execute(query, {"ids": [str(session_id) for session_id in session_ids]}).fetchall()

        transcriptions = {}
        for row in rows:
            if row["has_row"]:
                transcription = Transcription(
                    full_text=row["full_text"],
                    speaker_labels=row["speaker_labels"],
                    summary=row["t_summary"] or row["s_summary"],
                    language=row["language"],
                    source="transcriptions",
                )
            else:
                transcription = Transcription(
                    full_text=row["transcript"], summary=row["s_summary"], source="call_session"
                )
            transcriptions[row["session_id"]] = transcription
        return transcriptions

    def load_blocked_numbers(self) -> list[tuple[str, str | None]]:
        """Return every (phone_number, reason) of the blocklist, numbers as stored."""
        query = sql.SQL("SELECT phone_number, reason FROM {}").format(self._table("blocked_numbers"))
        with self.connection() as conn:
            return [(row["phone_number"], row["reason"]) for row in conn.execute(query).fetchall()]

    # Claiming

    def claim_due_sessions(
        self,
        run_id: str,
        limit: int,
        transcript_wait_minutes: int,
        lease_minutes: int,
        max_attempts: int,
        started_between: tuple[datetime, datetime] | None = None,
    ) -> list[CallSession]:
        """Claim up to `limit` due sessions for `run_id`.

        FOR UPDATE SKIP LOCKED lets concurrent runs claim disjoint sets without waiting on each other. The
        claim is a lease: sync_next_attempt_at is set to its expiry, after which a crashed run's sessions
        are due again. A session whose expired claims have used up `max_attempts` (a session that kills
        its run every time) is failed instead of claimed again. `started_between` (start, end) limits the
        claim to calls that started in that window, as a day's backfill does.
        """
        self.fail_abandoned_sessions(run_id, max_attempts)
        table = self._table("telavox_call_sessions")
        window = sql.SQL(
            " AND coalesce(started_at, ended_at) >= %(window_start)s AND coalesce(started_at, ended_at) < %(window_end)s"
            if started_between
            else ""
        )
        query = sql.SQL(
            "WITH due AS ("
            "  SELECT id FROM {table} WHERE {due} AND {due_at} <= now() AND {ready}{window}"
            "  ORDER BY {due_at} LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            ") "
            "UPDATE {table} AS s SET {claim} FROM due WHERE s.id = due.id RETURNING {returning}"
        ).format(
            table=table,
            due=_DUE_PREDICATE,
            due_at=_DUE_AT,
            ready=_TRANSCRIPT_READY,
            claim=_CLAIM_ASSIGNMENTS,
            returning=_session_columns("s"),
            window=window,
        )
        params: dict[str, Any] = {
            "limit": limit,
            "wait": transcript_wait_minutes,
            "run_id": run_id,
            "lease": lease_minutes,
        }
        if started_between:
            params["window_start"], params["window_end"] = started_between
        with self.connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return sorted((CallSession.model_validate(row) for row in rows), key=_session_sort_key)

    def fail_abandoned_sessions(self, run_id: str, max_attempts: int) -> int:
        """Fail the sessions whose expired claims used up `max_attempts`; return how many.

        Each such claim ended without an outcome (the run died), so claiming the session once more would
        most likely kill another run and hold up the sessions claimed with it.
        """
        table = self._table("telavox_call_sessions")
        query = sql.SQL(
            "WITH abandoned AS ("
            "  UPDATE {table} SET sync_status = 'failed', sync_reason_code = 'abandoned',"
            "    sync_reason = format('gave up after %%s attempts: the runs that claimed this session did not"
            " finish (the last was run %%s); check their logs, then replay it', sync_attempts, sync_claim_run_id),"
            "    last_error = format('gave up after %%s attempts without an outcome', sync_attempts),"
            "    sync_next_attempt_at = NULL, sync_claim_run_id = NULL, sync_claimed_at = NULL, updated_at = now()"
            "  WHERE {due} AND sync_status = 'syncing' AND {due_at} <= now() AND sync_attempts >= %(max_attempts)s"
            "  RETURNING id, sync_reason"
            ") "
            "INSERT INTO {log} (call_session_id, run_id, action, error) SELECT id, %(run_id)s, 'abandoned', sync_reason"
            " FROM abandoned"
        ).format(table=table, log=self._table("callsync_sync_log"), due=_DUE_PREDICATE, due_at=_DUE_AT)
        with self.connection() as conn:
            return conn.execute(query, {"max_attempts": max_attempts, "run_id": run_id}).rowcount

    def claim_sessions_by_id(
        self,
        run_id: str,
        session_ids: Sequence[str],
        lease_minutes: int,
        only_due: bool = False,
        transcript_wait_minutes: int = 0,
    ) -> ClaimResult:
        """Claim the given sessions.

        An explicit id from an operator (a UI launch or a replay) ignores backoff and the transcript wait.
        With `only_due`, as the sensor's runs use it, a session is claimed only if it is still due, so a
        run that waited in the queue does not retry a session another run has just handled. A synced
        session or one under another run's live claim is never taken.
        """
        table = self._table("telavox_call_sessions")
        due_filter = (
            sql.SQL(" AND {due} AND {due_at} <= now() AND {ready}").format(
                due=_DUE_PREDICATE, due_at=_DUE_AT, ready=_TRANSCRIPT_READY
            )
            if only_due
            else sql.SQL("")
        )
        query = sql.SQL(
            "WITH wanted AS ("
            "  SELECT id FROM {table} WHERE id = ANY(%(ids)s::uuid[]) AND ended_at IS NOT NULL"
            "  AND sync_status <> 'synced'"
            "  AND NOT (sync_status = 'syncing' AND sync_next_attempt_at > now()){due_filter}"
            "  FOR UPDATE SKIP LOCKED"
            ") "
            "UPDATE {table} AS s SET {claim} FROM wanted WHERE s.id = wanted.id RETURNING {returning}"
        ).format(table=table, due_filter=due_filter, claim=_CLAIM_ASSIGNMENTS, returning=_session_columns("s"))
        status_query = sql.SQL(
            "SELECT id::text AS id, sync_status, sync_claim_run_id, ended_at FROM {table} WHERE id = ANY(%(ids)s::uuid[])"
        ).format(table=table)

        params = {"ids": list(session_ids), "run_id": run_id, "lease": lease_minutes, "wait": transcript_wait_minutes}
        with self.connection() as conn:
            rows = conn.execute(query, params).fetchall()
            states = {row["id"]: row for row in conn.execute(status_query, params).fetchall()}

        sessions = sorted((CallSession.model_validate(row) for row in rows), key=_session_sort_key)
        claimed_ids = {str(session.id) for session in sessions}
        unclaimed = []
        for session_id in session_ids:
            if session_id in claimed_ids:
                continue
            unclaimed.append(UnclaimedSession(session_id, _unclaimed_reason(states.get(session_id), only_due)))
        return ClaimResult(sessions=sessions, unclaimed=unclaimed)

    def renew_claims(self, run_id: str, session_ids: Sequence[UUID], lease_minutes: int) -> set[UUID]:
        """Extend this run's lease on the given sessions; return the ids the run still holds."""
        if not session_ids:
            return set()
        query = sql.SQL(
            "UPDATE {} SET sync_next_attempt_at = now() + make_interval(mins => %(lease)s)"
            " WHERE id = ANY(%(ids)s::uuid[]) AND sync_claim_run_id = %(run_id)s AND sync_status = 'syncing'"
            " RETURNING id"
        ).format(self._table("telavox_call_sessions"))
        params = {"ids": [str(session_id) for session_id in session_ids], "run_id": run_id, "lease": lease_minutes}
        with self.connection() as conn:
            return {row["id"] for row in conn.execute(query, params).fetchall()}

    def extend_claim(
        self, session_id: UUID, run_id: str, lease_minutes: int, log_entries: Sequence[SyncLogEntry]
    ) -> bool:
        """Extend this run's lease on one session and write `log_entries`, only if the run still holds it.

        Called right before a HubSpot create: once this returns True, no other run can claim the session
        for a whole lease, so two runs never create the same object at the same time.
        """
        query = sql.SQL(
            "UPDATE {} SET sync_next_attempt_at = now() + make_interval(mins => %(lease)s)"
            " WHERE id = %(id)s AND sync_claim_run_id = %(run_id)s AND sync_status = 'syncing'"
        ).format(self._table("telavox_call_sessions"))
        with self.connection() as conn:
            held = conn.execute(query, {"id": session_id, "run_id": run_id, "lease": lease_minutes}).rowcount == 1
            if held:
                self._insert_log_entries(conn, session_id, run_id, log_entries)
        return held

    def due_sessions_plan(self, limit: int, transcript_wait_minutes: int) -> str:
        """Return PostgreSQL's EXPLAIN of the query that picks due sessions, for checking index use."""
        query = sql.SQL(
            "EXPLAIN SELECT id FROM {table} WHERE {due} AND {due_at} <= now() AND {ready}"
            " ORDER BY {due_at} LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
        ).format(
            table=self._table("telavox_call_sessions"), due=_DUE_PREDICATE, due_at=_DUE_AT, ready=_TRANSCRIPT_READY
        )
        with self.connection() as conn:
            rows = conn.execute(query, {"limit": limit, "wait": transcript_wait_minutes}).fetchall()
        return "\n".join(str(next(iter(row.values()))) for row in rows)

    # Failed sessions: the dead letter

    def list_failed_sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the sessions that are failed for good (no next attempt), newest first, with their errors."""
        query = sql.SQL(
            "SELECT id::text AS id, telavox_call_id, sync_reason_code, sync_reason, sync_attempts, updated_at"
            " FROM {} WHERE sync_status = 'failed' AND sync_next_attempt_at IS NULL"
            " ORDER BY updated_at DESC NULLS LAST LIMIT %(limit)s"
        ).format(self._table("telavox_call_sessions"))
        with self.connection() as conn:
            return list(conn.execute(query, {"limit": limit}).fetchall())

    def requeue_failed_sessions(self, session_ids: Sequence[str] | None, requested_by: str) -> list[str]:
        """Make failed sessions due again with a fresh attempt count; `None` requeues every failed one.

        Only failed sessions are touched: a synced session keeps its CALL, and a claimed one belongs to its
        run. Returns the ids requeued; each gets a `replay_requested` sync log row naming who asked.
        """
        id_filter = sql.SQL(" AND id = ANY(%(ids)s::uuid[])") if session_ids is not None else sql.SQL("")
        query = sql.SQL(
            "WITH requeued AS ("
            "  UPDATE {table} SET sync_status = 'pending', sync_attempts = 0, sync_next_attempt_at = NULL,"
            "  sync_reason = NULL, sync_reason_code = NULL, updated_at = now()"
            "  WHERE sync_status = 'failed'{id_filter}"
            "  RETURNING id"
            ") "
            "INSERT INTO {log} (call_session_id, action, detail)"
            " SELECT id, 'replay_requested', jsonb_build_object('requested_by', %(requested_by)s::text) FROM requeued"
            " RETURNING call_session_id::text AS id"
        ).format(table=self._table("telavox_call_sessions"), log=self._table("callsync_sync_log"), id_filter=id_filter)
        params = {"ids": list(session_ids or []), "requested_by": requested_by}
        with self.connection() as conn:
            return [row["id"] for row in conn.execute(query, params).fetchall()]

    def release_claims_of_run(
        self, run_id: str, reason: str, max_attempts: int, initial_delay_minutes: float, max_delay_minutes: float
    ) -> list[str]:
        """Fail the sessions a dead, failed or cancelled run still holds, so none stays `syncing`.

        The attempt stays charged and the retry backs off as any failure's does, so a session that kills
        every run that claims it reaches `max_attempts` and is parked (failed, no next attempt). A CALL
        create in flight is safe to retry, because its request time makes the next attempt wait out
        HubSpot's search lag.
        """
        query = sql.SQL(
            "WITH released AS ("
            "  UPDATE {table} SET sync_status = 'failed', sync_reason_code = 'run_failed',"
            "  sync_reason = CASE WHEN sync_attempts >= %(max_attempts)s"
            "    THEN %(reason)s || '; no attempts left, so it is parked: replay it once the cause is fixed'"
            "    ELSE %(reason)s END,"
            "  last_error = %(reason)s, sync_claim_run_id = NULL, sync_claimed_at = NULL,"
            "  sync_next_attempt_at = CASE WHEN sync_attempts >= %(max_attempts)s THEN NULL"
            "    ELSE now() + make_interval(secs => 60 * least(%(initial)s * power(2, greatest(sync_attempts - 1, 0)),"
            "    %(max_delay)s)) END,"
            "  updated_at = now()"
            "  WHERE sync_claim_run_id = %(run_id)s AND sync_status = 'syncing'"
            "  RETURNING id"
            ") "
            "INSERT INTO {log} (call_session_id, run_id, action, error)"
            " SELECT id, %(run_id)s, 'run_failed', %(reason)s FROM released RETURNING call_session_id::text AS id"
        ).format(table=self._table("telavox_call_sessions"), log=self._table("callsync_sync_log"))
        params = {
            "run_id": run_id,
            "reason": reason,
            "max_attempts": max_attempts,
            "initial": initial_delay_minutes,
            "max_delay": max_delay_minutes,
        }
        with self.connection() as conn:
            return [row["id"] for row in conn.execute(query, params).fetchall()]

    # A day's reconciliation

    def synced_calls_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Return the synced sessions of calls that started in [start, end), with their portal and CALL id."""
        query = sql.SQL(
            "SELECT id, hubspot_portal_id, hubspot_engagement_id FROM {} WHERE sync_status = 'synced'"
            " AND hubspot_engagement_id IS NOT NULL"
            " AND coalesce(started_at, ended_at) >= %(start)s AND coalesce(started_at, ended_at) < %(end)s"
        ).format(self._table("telavox_call_sessions"))
        with self.connection() as conn:
            return list(conn.execute(query, {"start": start, "end": end}).fetchall())

    def requeue_deleted_calls(self, session_ids: Sequence[UUID], run_id: str) -> int:
        """Make synced sessions whose CALL was deleted in HubSpot pending again, forgetting the CALL id."""
        if not session_ids:
            return 0
        query = sql.SQL(
            "WITH requeued AS ("
            "  UPDATE {table} SET sync_status = 'pending', sync_attempts = 0, sync_next_attempt_at = NULL,"
            "  hubspot_engagement_id = NULL, hubspot_call_requested_at = NULL, sync_reason = NULL,"
            "  sync_reason_code = NULL, updated_at = now()"
            "  WHERE id = ANY(%(ids)s::uuid[]) AND sync_status = 'synced'"
            "  RETURNING id"
            ") "
            "INSERT INTO {log} (call_session_id, run_id, action, error)"
            " SELECT id, %(run_id)s, 'call_deleted_requeued', 'the CALL is no longer in HubSpot' FROM requeued"
        ).format(table=self._table("telavox_call_sessions"), log=self._table("callsync_sync_log"))
        with self.connection() as conn:
            return conn.execute(
                query, {"ids": [str(session_id) for session_id in session_ids], "run_id": run_id}
            ).rowcount

    def day_outcome_rows(self, start: datetime, end: datetime, transcript_wait_minutes: int) -> list[dict[str, Any]]:
        """Return one row per session of calls that started in [start, end): ended, eligible, status, reason."""
        query = sql.SQL(
            "SELECT ended_at IS NOT NULL AS ended,"
            " (ended_at IS NOT NULL AND {ready}) AS eligible, sync_status, sync_reason_code"
            " FROM {table}"
            " WHERE coalesce(started_at, ended_at) >= %(start)s AND coalesce(started_at, ended_at) < %(end)s"
        ).format(table=self._table("telavox_call_sessions"), ready=_TRANSCRIPT_READY)
        with self.connection() as conn:
            return list(conn.execute(query, {"start": start, "end": end, "wait": transcript_wait_minutes}).fetchall())

    # The number-to-contact map

    def find_contact_numbers(self, portal: str, numbers: Sequence[str]) -> dict[str, ContactNumber]:
        """Return the map's rows for these E.164 numbers."""
        if not numbers:
            return {}
        query = sql.SQL(
            "SELECT phone_e164, state, contact_id, run_id, requested_at FROM {}"
            " WHERE portal = %(portal)s AND phone_e164 = ANY(%(numbers)s)"
        ).format(self._table("callsync_contact_numbers"))
        with self.connection() as conn:
            rows = conn.execute(query, {"portal": portal, "numbers": list(numbers)}).fetchall()
        return {row["phone_e164"]: ContactNumber(**row) for row in rows}

    def remember_contacts(self, portal: str, contact_ids: dict[str, str]) -> None:
        """Record known contacts by number; a contact found or created replaces a create in flight."""
        if not contact_ids:
            return
        query = sql.SQL(
            "INSERT INTO {} (portal, phone_e164, contact_id, state, updated_at)"
            " SELECT %(portal)s, number, contact_id, 'known', now() FROM unnest(%(numbers)s::text[], %(ids)s::text[])"
            " AS v(number, contact_id)"
            " ON CONFLICT (portal, phone_e164) DO UPDATE SET contact_id = excluded.contact_id, state = 'known',"
            " updated_at = now()"
        ).format(self._table("callsync_contact_numbers"))
        params = {"portal": portal, "numbers": list(contact_ids), "ids": list(contact_ids.values())}
        with self.connection() as conn:
            conn.execute(query, params)

    def reserve_contact_numbers(
        self, portal: str, numbers: Sequence[str], run_id: str, stale_after_seconds: float
    ) -> set[str]:
        """Reserve the right to create the contact of each number; return the numbers this run now holds.

        A number is reserved when no row has it, or when another run's create is older than
        `stale_after_seconds` (the search lag): that run died, and a search has just shown its create
        was not applied. A number with a known contact or a recent create in flight is not reserved.
        """
        if not numbers:
            return set()
        query = sql.SQL(
            "INSERT INTO {table} AS m (portal, phone_e164, state, run_id, requested_at, updated_at)"
            " SELECT %(portal)s, number, 'creating', %(run_id)s, now(), now() FROM unnest(%(numbers)s::text[]) AS number"
            " ON CONFLICT (portal, phone_e164) DO UPDATE SET run_id = excluded.run_id, requested_at = now(),"
            " updated_at = now()"
            " WHERE m.state = 'creating' AND m.requested_at < now() - make_interval(secs => %(stale)s)"
            " RETURNING phone_e164"
        ).format(table=self._table("callsync_contact_numbers"))
        params = {"portal": portal, "numbers": list(numbers), "run_id": run_id, "stale": stale_after_seconds}
        with self.connection() as conn:
            return {row["phone_e164"] for row in conn.execute(query, params).fetchall()}

    def forget_contact_numbers(self, portal: str, numbers: Sequence[str]) -> None:
        """Drop map rows whose contact HubSpot no longer has, so the next lookup searches again."""
        if not numbers:
            return
        query = sql.SQL("DELETE FROM {} WHERE portal = %(portal)s AND phone_e164 = ANY(%(numbers)s)").format(
            self._table("callsync_contact_numbers")
        )
        with self.connection() as conn:
            conn.execute(query, {"portal": portal, "numbers": list(numbers)})

    def release_contact_numbers(self, portal: str, numbers: Sequence[str], run_id: str) -> None:
        """Drop this run's reservations for creates that HubSpot refused, so the next attempt need not wait."""
        if not numbers:
            return
        query = sql.SQL(
            "DELETE FROM {} WHERE portal = %(portal)s AND phone_e164 = ANY(%(numbers)s) AND state = 'creating'"
            " AND run_id = %(run_id)s"
        ).format(self._table("callsync_contact_numbers"))
        with self.connection() as conn:
            conn.execute(query, {"portal": portal, "numbers": list(numbers), "run_id": run_id})

    # CALL creates

    def record_call_requests(self, run_id: str, session_ids: Sequence[UUID], lease_minutes: int) -> set[UUID]:
        """Before a CALL create is sent: stamp the request time and renew the lease; return the held sessions.

        Committed before the request, so that whatever happens next (a timeout, a crash, a kill) the next
        attempt treats a CALL as possibly existing and waits out HubSpot's search lag before creating another. The
        renewed lease keeps other runs off the sessions while the create is in flight.
        """
        if not session_ids:
            return set()
        query = sql.SQL(
            "WITH held AS ("
            "  UPDATE {table} SET hubspot_call_requested_at = now(),"
            "  sync_next_attempt_at = now() + make_interval(mins => %(lease)s)"
            "  WHERE id = ANY(%(ids)s::uuid[]) AND sync_claim_run_id = %(run_id)s AND sync_status = 'syncing'"
            "  RETURNING id, telavox_call_id"
            ") "
            "INSERT INTO {log} (call_session_id, run_id, action, detail)"
            " SELECT id, %(run_id)s, 'call_create_requested', jsonb_build_object('hs_call_external_id', telavox_call_id)"
            " FROM held RETURNING call_session_id"
        ).format(table=self._table("telavox_call_sessions"), log=self._table("callsync_sync_log"))
        params = {"ids": [str(session_id) for session_id in session_ids], "run_id": run_id, "lease": lease_minutes}
        with self.connection() as conn:
            return {row["call_session_id"] for row in conn.execute(query, params).fetchall()}

    def store_call_ids(self, call_ids: dict[UUID, str]) -> None:
        """Save CALL ids the moment HubSpot returns them, so a crash before write-back cannot lose them.

        Written whichever run has the claim now, because the CALL exists either way. An id already stored is kept.
        """
        if not call_ids:
            return
        query = sql.SQL(
            "UPDATE {} AS s SET hubspot_engagement_id = v.call_id, updated_at = now()"
            " FROM unnest(%(ids)s::uuid[], %(call_ids)s::text[]) AS v(id, call_id)"
            " WHERE s.id = v.id AND s.hubspot_engagement_id IS NULL"
        ).format(self._table("telavox_call_sessions"))
        params = {"ids": [str(session_id) for session_id in call_ids], "call_ids": list(call_ids.values())}
        with self.connection() as conn:
            conn.execute(query, params)

    def clear_call_requests(self, session_ids: Sequence[UUID]) -> None:
        """Forget the request time of creates HubSpot refused outright (a 400): no CALL can exist."""
        if not session_ids:
            return
        query = sql.SQL(
            "UPDATE {} SET hubspot_call_requested_at = NULL WHERE id = ANY(%(ids)s::uuid[])"
            " AND hubspot_engagement_id IS NULL"
        ).format(self._table("telavox_call_sessions"))
        with self.connection() as conn:
            conn.execute(query, {"ids": [str(session_id) for session_id in session_ids]})

    # Writing

    def record_outcome(
        self,
        session_id: UUID,
        run_id: str,
        outcome: SessionOutcome,
        log_entries: Sequence[SyncLogEntry],
        next_attempt_at: datetime | None,
    ) -> bool:
        """Write a session's outcome and its sync log rows in one transaction.

        The update only applies while the claim still belongs to `run_id`. Returns False when the claim was
        lost because the lease expired and another run took the session. The log rows are written either
        way, so the audit trail keeps what this run did. A CALL id already stored is never replaced, so an id
        the application or an earlier attempt wrote stays the one that counts.
        """
        failed = outcome.status is SyncStatus.FAILED
        query = sql.SQL(
            "UPDATE {table} SET"
            " sync_status = %(status)s,"
            " sync_reason = %(reason)s,"
            " sync_reason_code = %(reason_code)s,"
            " last_error = CASE WHEN %(failed)s THEN %(reason)s ELSE last_error END,"
            " sync_next_attempt_at = %(next_attempt_at)s,"
            " sync_claim_run_id = NULL,"
            " sync_claimed_at = NULL,"
            " hubspot_contact_id = coalesce(%(contact_id)s, hubspot_contact_id),"
            " hubspot_company_id = coalesce(%(company_id)s, hubspot_company_id),"
            " hubspot_engagement_id = coalesce(hubspot_engagement_id, %(engagement_id)s),"
            " sync_attempts = CASE WHEN %(charge_attempt)s THEN sync_attempts ELSE greatest(sync_attempts - 1, 0) END,"
            " synced_at = CASE WHEN %(status)s = 'synced' THEN now() ELSE synced_at END,"
            " updated_at = now()"
            " WHERE id = %(id)s AND sync_claim_run_id = %(run_id)s"
        ).format(table=self._table("telavox_call_sessions"))
        params = {
            "id": session_id,
            "run_id": run_id,
            "status": outcome.status.value,
            "reason": outcome.reason,
            "reason_code": outcome.reason_code,
            "failed": failed,
            "next_attempt_at": next_attempt_at,
            "contact_id": outcome.hubspot_contact_id,
            "company_id": outcome.hubspot_company_id,
            "engagement_id": outcome.hubspot_engagement_id,
            "charge_attempt": outcome.charge_attempt,
        }
        with self.connection() as conn:
            updated = conn.execute(query, params).rowcount == 1
            self._insert_log_entries(conn, session_id, run_id, log_entries)
        return updated

    def record_outcomes(self, run_id: str, outcomes: Sequence[OutcomeToWrite]) -> set[UUID]:
        """Write many sessions' outcomes and sync log rows in one transaction; return the ids updated.

        The same rules as `record_outcome`, in two statements for the whole list, so write-back costs a few
        round trips per chunk rather than per session. A session missing from the result lost its claim.
        """
        if not outcomes:
            return set()
        query = sql.SQL(
            "UPDATE {table} AS s SET"
            " sync_status = v.status,"
            " sync_reason = v.reason,"
            " sync_reason_code = v.reason_code,"
            " last_error = CASE WHEN v.status = 'failed' THEN v.reason ELSE s.last_error END,"
            " sync_next_attempt_at = v.next_attempt_at,"
            " sync_claim_run_id = NULL,"
            " sync_claimed_at = NULL,"
            " hubspot_contact_id = coalesce(v.contact_id, s.hubspot_contact_id),"
            " hubspot_company_id = coalesce(v.company_id, s.hubspot_company_id),"
            " hubspot_engagement_id = coalesce(s.hubspot_engagement_id, v.engagement_id),"
            " sync_attempts = CASE WHEN v.charge_attempt THEN s.sync_attempts ELSE greatest(s.sync_attempts - 1, 0) END,"
            " synced_at = CASE WHEN v.status = 'synced' THEN now() ELSE s.synced_at END,"
            " updated_at = now()"
            " FROM unnest(%(ids)s::uuid[], %(status)s::text[], %(reason)s::text[], %(reason_code)s::text[],"
            "   %(next_attempt_at)s::timestamptz[], %(contact_id)s::text[], %(company_id)s::text[],"
            "   %(engagement_id)s::text[], %(charge_attempt)s::boolean[])"
            " AS v(id, status, reason, reason_code, next_attempt_at, contact_id, company_id, engagement_id, charge_attempt)"
            " WHERE s.id = v.id AND s.sync_claim_run_id = %(run_id)s"
            " RETURNING s.id"
        ).format(table=self._table("telavox_call_sessions"))
        params = {
            "run_id": run_id,
            "ids": [str(entry.session_id) for entry in outcomes],
            "status": [entry.outcome.status.value for entry in outcomes],
            "reason": [entry.outcome.reason for entry in outcomes],
            "reason_code": [entry.outcome.reason_code for entry in outcomes],
            "next_attempt_at": [entry.next_attempt_at for entry in outcomes],
            "contact_id": [entry.outcome.hubspot_contact_id for entry in outcomes],
            "company_id": [entry.outcome.hubspot_company_id for entry in outcomes],
            "engagement_id": [entry.outcome.hubspot_engagement_id for entry in outcomes],
            "charge_attempt": [entry.outcome.charge_attempt for entry in outcomes],
        }
        with self.connection() as conn:
            updated = {row["id"] for row in conn.execute(query, params).fetchall()}
            self._insert_log_rows(
                conn, run_id, [(entry.session_id, log_entry) for entry in outcomes for log_entry in entry.log_entries]
            )
        return updated

    def _insert_log_entries(
        self, conn: psycopg.Connection[Any], session_id: UUID, run_id: str, entries: Sequence[SyncLogEntry]
    ) -> None:
        self._insert_log_rows(conn, run_id, [(session_id, entry) for entry in entries])

    def _insert_log_rows(
        self, conn: psycopg.Connection[Any], run_id: str, rows: Sequence[tuple[UUID, SyncLogEntry]]
    ) -> None:
        if not rows:
            return
        query = sql.SQL(
            "INSERT INTO {} (call_session_id, run_id, action, hubspot_object_id, hubspot_correlation_id, error, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        ).format(self._table("callsync_sync_log"))
        with conn.cursor() as cursor:
            cursor.executemany(
                query,
                [
                    (
                        session_id,
                        run_id,
                        entry.action,
                        entry.hubspot_object_id,
                        entry.hubspot_correlation_id,
                        entry.error,
                        Jsonb(entry.detail) if entry.detail is not None else None,
                    )
                    for session_id, entry in rows
                ],
            )


_CLAIM_ASSIGNMENTS = sql.SQL(
    "sync_status = 'syncing',"
    " sync_claim_run_id = %(run_id)s,"
    " sync_claimed_at = now(),"
    " sync_next_attempt_at = now() + make_interval(mins => %(lease)s),"
    " sync_attempts = s.sync_attempts + 1,"
    " updated_at = now()"
)


def describe_database(conninfo: str) -> str:
    """Name the host, port, database and user of a connection string, never its password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "an unparseable connection string"
    host = parts.get("host") or "the default host"
    return f"{host}:{parts.get('port') or 5432}, database {parts.get('dbname') or '(default)'}, user {parts.get('user') or '(default)'}"


def _session_columns(alias: str | None = None) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.Identifier(alias, column) if alias else sql.Identifier(column) for column in _SESSION_COLUMNS
    )


def _session_sort_key(session: CallSession) -> tuple[str, str]:
    moment = session.started_at or session.ended_at
    return (moment.isoformat() if moment else "", str(session.id))


def _unclaimed_reason(state: dict[str, Any] | None, only_due: bool) -> str:
    if state is None:
        return "no call session has this id"
    if state["ended_at"] is None:
        return "the call has not ended yet"
    if state["sync_status"] == SyncStatus.SYNCED:
        return "already synced to HubSpot"
    if state["sync_status"] == SyncStatus.SYNCING:
        return f"claimed by run {state['sync_claim_run_id']}, whose lease has not expired"
    if only_due:
        return f"no longer due (status {state['sync_status']}): another run handled it or it waits for a retry"
    return "locked by another run at the moment of the claim; launch it again"
