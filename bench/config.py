"""The benchmark's scenarios and sizes, read from command-line options and environment variables."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Literal

ContactSearch = Literal["many_numbers", "few_numbers"]

BENCH_SCHEMA = "callsync_bench"
# Sent only to the stand-in that the benchmark starts. It is not a HubSpot credential.
STANDIN_TOKEN = "bench-standin-token"

# The limits of a HubSpot Free or Starter account: 100 requests per rolling 10 s and 5 searches per second.
# The stand-in enforces them and callsync's client is configured with the same values.
REQUESTS_PER_TEN_SECONDS = 100
SEARCHES_PER_SECOND = 5

DEFAULT_SESSIONS = 2000
DEFAULT_MEMORY_SESSIONS = 10_000
DEFAULT_MEMORY_TRANSCRIPT_KB = 50
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_SEED = 20_240_611


@dataclass(frozen=True)
class Scenario:
    """One benchmark scenario: its dataset size and the settings the sync job runs with."""

    name: str
    description: str
    sessions: int
    hubspot_batch_size: int
    contact_search: ContactSearch
    # ops.fetch.config.max_batch_size: how many due sessions one Dagster run claims.
    max_batch_size: int
    # None gives transcripts of a few KB each. A number gives transcripts of that many characters.
    transcript_chars: int | None = None


@dataclass(frozen=True)
class BenchConfig:
    scenarios: tuple[Scenario, ...]
    seed: int
    keep_schema: bool


SCENARIO_NAMES = ("many_numbers", "few_numbers", "per_call", "memory")


def _int_from_environment(name: str, default: int) -> int:
    """Read a positive whole number from the environment; exit with code 2, as argparse does, on a bad value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        print(f"Invalid {name} {raw!r}: set it to a whole number of at least 1, such as {default}.", file=sys.stderr)
        raise SystemExit(2)
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def build_parser() -> argparse.ArgumentParser:
    sessions = _int_from_environment("BENCH_SESSIONS", DEFAULT_SESSIONS)
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Run callsync's sync job against the rate-limited HubSpot stand-in and print its figures. "
        "Each option defaults to the environment variable named in its help, then to the full-size value.",
    )

    parser.add_argument(
        "--sessions",
        type=_positive_int,
        default=sessions,
        help=f"call sessions in the many_numbers and few_numbers scenarios (BENCH_SESSIONS, default {DEFAULT_SESSIONS})",
    )
    parser.add_argument(
        "--per-call-sessions",
        type=_positive_int,
        default=_int_from_environment("BENCH_PER_CALL_SESSIONS", sessions),
        help="call sessions in the per_call scenario, the slow one (BENCH_PER_CALL_SESSIONS, default --sessions)",
    )
    parser.add_argument(
        "--memory-sessions",
        type=_positive_int,
        default=_int_from_environment("BENCH_MEMORY_SESSIONS", DEFAULT_MEMORY_SESSIONS),
        help=f"call sessions in the memory scenario (BENCH_MEMORY_SESSIONS, default {DEFAULT_MEMORY_SESSIONS})",
    )
    parser.add_argument(
        "--memory-transcript-kb",
        type=_positive_int,
        default=_int_from_environment("BENCH_MEMORY_TRANSCRIPT_KB", DEFAULT_MEMORY_TRANSCRIPT_KB),
        help="transcript size in the memory scenario, in thousands of characters "
        f"(BENCH_MEMORY_TRANSCRIPT_KB, default {DEFAULT_MEMORY_TRANSCRIPT_KB})",
    )

    parser.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=_int_from_environment("BENCH_MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE),
        help="sessions one Dagster run claims in the batched and memory scenarios "
        f"(BENCH_MAX_BATCH_SIZE, default {DEFAULT_MAX_BATCH_SIZE})",
    )
    parser.add_argument(
        "--per-call-max-batch-size",
        type=_positive_int,
        default=_int_from_environment("BENCH_PER_CALL_MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE),
        help="sessions one Dagster run claims in the per_call scenario "
        f"(BENCH_PER_CALL_MAX_BATCH_SIZE, default {DEFAULT_MAX_BATCH_SIZE})",
    )

    parser.add_argument(
        "--scenarios",
        default=os.environ.get("BENCH_SCENARIOS", ",".join(SCENARIO_NAMES)),
        help=f"comma-separated scenarios to run (BENCH_SCENARIOS, default all: {','.join(SCENARIO_NAMES)})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=_int_from_environment("BENCH_SEED", DEFAULT_SEED),
        help=f"seed of the generated dataset (BENCH_SEED, default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--keep-schema",
        action="store_true",
        help=f"leave the last scenario's data in the {BENCH_SCHEMA} schema instead of dropping it at the end",
    )
    return parser


def parse_config(argv: list[str] | None = None) -> BenchConfig:
    parser = build_parser()
    args = parser.parse_args(argv)

    selected = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in selected if name not in SCENARIO_NAMES]
    if unknown or not selected:
        parser.error(f"unknown scenarios {unknown}: choose from {', '.join(SCENARIO_NAMES)}")

    all_scenarios = {
        "many_numbers": Scenario(
            name="many_numbers",
            description="batched, dozens of numbers per contact search",
            sessions=args.sessions,
            hubspot_batch_size=100,
            contact_search="many_numbers",
            max_batch_size=args.max_batch_size,
        ),
        "few_numbers": Scenario(
            name="few_numbers",
            description="batched, a few numbers per contact search",
            sessions=args.sessions,
            hubspot_batch_size=100,
            contact_search="few_numbers",
            max_batch_size=args.max_batch_size,
        ),
        "per_call": Scenario(
            name="per_call",
            description="HubSpot batch size 1, the original worker's flow",
            sessions=args.per_call_sessions,
            hubspot_batch_size=1,
            contact_search="few_numbers",
            max_batch_size=args.per_call_max_batch_size,
        ),
        "memory": Scenario(
            name="memory",
            description=f"batched, {args.memory_transcript_kb},000-character transcripts",
            sessions=args.memory_sessions,
            hubspot_batch_size=100,
            contact_search="few_numbers",
            max_batch_size=args.max_batch_size,
            transcript_chars=args.memory_transcript_kb * 1000,
        ),
    }
    scenarios = tuple(all_scenarios[name] for name in SCENARIO_NAMES if name in selected)
    return BenchConfig(scenarios=scenarios, seed=args.seed, keep_schema=args.keep_schema)
