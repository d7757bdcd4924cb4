"""The `callsync` command: migrations, failed sessions and their replay, and the demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from callsync_dagster.db.migrate import apply_migrations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.add_argument(
        "--schema",
        default=os.environ.get("CALLSYNC_DB_SCHEMA", "public"),
        help="schema holding the call tables (default: CALLSYNC_DB_SCHEMA or public)",
    )
    failed = commands.add_parser(
        "failed",
        help="list the call sessions that failed for good, with their errors",
        description="List the call sessions that failed for good (no next attempt), newest first, with their "
        "reasons. Reads the database in CALLSYNC_DATABASE_URL.",
    )
    failed.add_argument("--limit", type=int, default=50, help="how many to list, newest first (default 50)")
    replay = commands.add_parser(
        "replay",
        help="make failed call sessions due again, with a fresh attempt count",
        description="Make failed call sessions due again with a fresh attempt count; the sensor syncs them. "
        "Writes to the database in CALLSYNC_DATABASE_URL.",
    )
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("session_ids", nargs="*", default=[], help="telavox_call_sessions ids to replay")
    chosen.add_argument("--all-failed", action="store_true", help="replay every failed session")
    for command in (failed, replay):
        command.add_argument(
            "--schema",
            default=os.environ.get("CALLSYNC_DB_SCHEMA", "public"),
            help="schema holding the call tables (default: CALLSYNC_DB_SCHEMA or public)",
        )
    commands.add_parser("demo", help="sync the seeded demo calls into the local HubSpot stand-in")
    commands.add_parser("ui", help="serve the Dagster UI on 127.0.0.1:3000 over the demo data")

    args = parser.parse_args(argv)
    # Only callsync's own loggers print here: Dagster prints its run logs itself, and one line per HTTP
    # request or embedded-server command would bury the results. Their warnings still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("callsync_dagster").setLevel(logging.INFO)
    logging.getLogger("callsync_dagster.hubspot_standin").setLevel(logging.WARNING)
    logging.getLogger("dagster").propagate = False

    if args.command == "migrate":
        database_url = os.environ.get("CALLSYNC_DATABASE_URL")
        if not database_url:
            print("CALLSYNC_DATABASE_URL is not set: set it to the PostgreSQL connection URL", file=sys.stderr)
            return 2
        try:
            applied = apply_migrations(database_url, args.schema)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        print(f"Applied {len(applied)} migrations to schema {args.schema}: {', '.join(applied) or 'none were due'}")
        return 0

    if args.command in ("failed", "replay"):
        database_url = os.environ.get("CALLSYNC_DATABASE_URL")
        if not database_url:
            print("CALLSYNC_DATABASE_URL is not set: set it to the PostgreSQL connection URL", file=sys.stderr)
            return 2
        return list_failed(database_url, args) if args.command == "failed" else replay_failed(database_url, args)

    from callsync_dagster.demo.run import run_demo, run_ui

    return run_demo() if args.command == "demo" else run_ui()


def list_failed(database_url: str, args: argparse.Namespace) -> int:
    from callsync_dagster.resources.postgres import PostgresResource

    postgres = PostgresResource(database_url=database_url, db_schema=args.schema)
    try:
        rows = postgres.list_failed_sessions(args.limit)
    finally:
        postgres.close()
    if not rows:
        print("No call session has failed for good.")
        return 0
    print(f"{len(rows)} call sessions failed for good (newest first); replay with `callsync replay ID...`:")
    for row in rows:
        print(
            f"{row['id']}  {row['telavox_call_id']}  attempts={row['sync_attempts']}  "
            f"{row['sync_reason_code'] or 'unknown'}: {row['sync_reason'] or ''}"
        )
    return 0


def replay_failed(database_url: str, args: argparse.Namespace) -> int:
    import uuid

    from callsync_dagster.resources.postgres import PostgresResource

    session_ids = None if args.all_failed else args.session_ids
    for session_id in session_ids or []:
        try:
            uuid.UUID(session_id)
        except ValueError:
            print(
                f"Invalid call session id {session_id!r}: expected a UUID from telavox_call_sessions.id",
                file=sys.stderr,
            )
            return 2
    postgres = PostgresResource(database_url=database_url, db_schema=args.schema)
    try:
        requeued = postgres.requeue_failed_sessions(session_ids, requested_by="callsync replay")
    finally:
        postgres.close()
    print(f"Requeued {len(requeued)} failed call sessions; the sensor syncs them within a minute.")
    not_failed = sorted(set(session_ids or []) - set(requeued))
    if not_failed:
        print(f"Not failed, so left alone: {', '.join(not_failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
