"""The `callsync` command: migrations, the HubSpot stand-in and the demo."""

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

    from callsync_dagster.demo.run import run_demo, run_ui

    return run_demo() if args.command == "demo" else run_ui()


if __name__ == "__main__":
    sys.exit(main())
