"""Client-side rate limits: the in-memory sliding window and the PostgreSQL-backed limiter shared by runs.

The in-memory tests drive the limiter with a fake clock that the fake sleep advances, so nothing really waits.
The shared tests run against the test database and pass a sleep that records the waits instead of sleeping.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from callsync_dagster.resources.rate_limit import (
    GENERAL_WINDOW_SECONDS,
    SEARCH_WINDOW_SECONDS,
    WINDOW_MARGIN,
    LimiterPaused,
    LocalRateLimiter,
    SharedRateLimiter,
    SlidingWindow,
)

GENERAL_WINDOW = GENERAL_WINDOW_SECONDS * WINDOW_MARGIN
SEARCH_WINDOW = SEARCH_WINDOW_SECONDS * WINDOW_MARGIN
# No server receives these tokens. The tests only check that the database never stores them.
TOKEN = "pat-eu1-00000000-test-token-rate-limit"
OTHER_TOKEN = "pat-eu1-11111111-other-token-rate-limit"


class FakeClock:
    """A monotonic clock that moves only when `sleep` or `advance` moves it. `sleeps` records each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordedSleep:
    """A sleep that records the requested waits and returns at once. Safe to share between threads."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)


def max_in_any_window(times: list[float], window: float) -> int:
    """Return the largest number of `times` inside one half-open window [t, t + window)."""
    ordered = sorted(times)
    return max(sum(1 for other in ordered[index:] if other < start + window) for index, start in enumerate(ordered))


def acquire_all(limiter: LocalRateLimiter, clock: FakeClock, kind: Any, gaps: list[float]) -> list[float]:
    """Acquire once after each gap of fake time and return the reserved send times."""
    sent: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        limiter.acquire(kind)
        # The fake sleep moved the clock to the reserved slot.
        sent.append(clock())
    return sent


# SlidingWindow


def test_window_waits_at_fixed_clock() -> None:
    window = SlidingWindow(3, 1.0, clock=lambda: 100.0)

    waits = [window.reserve() for _ in range(9)]

    assert waits == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("max_requests", "interval_seconds"),
    [(0, 1.0), (5, 0.0), (5, -1.0)],
    ids=["zero-requests", "zero-interval", "negative-interval"],
)
def test_window_rejects_invalid_limit(max_requests: int, interval_seconds: float) -> None:
    with pytest.raises(ValueError, match="invalid rate limit"):
        SlidingWindow(max_requests, interval_seconds)


# LocalRateLimiter


@pytest.mark.parametrize(
    "gaps",
    [
        [0.0] * 40,
        [0.0, 0.3, 0.0, 2.5, 0.1, 0.0, 9.9, 0.0, 0.05, 4.0] * 4,
        [1.5] * 40,
    ],
    ids=["burst", "uneven-gaps", "steady-gaps"],
)
def test_local_general_window_holds_limit(gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=5, searches_per_second=3, clock=clock, sleep=clock.sleep)

    sent = acquire_all(limiter, clock, "general", gaps)

    assert max_in_any_window(sent, GENERAL_WINDOW) <= 5
    assert sent == sorted(sent)
    # The first five fit the empty window, so each goes when it is requested.
    assert sent[:5] == list(itertools.accumulate(gaps[:5]))


def test_local_search_window_holds_limit() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=100, searches_per_second=3, clock=clock, sleep=clock.sleep)

    sent = acquire_all(limiter, clock, "search", [0.0, 0.2, 0.2, 0.2, 0.0, 0.9, 0.0, 0.0, 0.0, 0.4] * 3)

    assert max_in_any_window(sent, SEARCH_WINDOW) <= 3
    assert len(sent) == 30


def test_local_kinds_have_separate_windows() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=2, searches_per_second=2, clock=clock, sleep=clock.sleep)

    general_waits = [limiter.acquire("general") for _ in range(2)]
    search_waits = [limiter.acquire("search") for _ in range(2)]

    assert general_waits == [0.0, 0.0]
    assert search_waits == [0.0, 0.0]
    assert limiter.acquire("general") == pytest.approx(GENERAL_WINDOW)


@pytest.mark.parametrize("kind", ["general", "search"])
def test_local_pause_holds_back_requests(kind: Any) -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=100, searches_per_second=5, clock=clock, sleep=clock.sleep)
    limiter.pause(30.0, "HubSpot answered 429 TEN_SECONDLY_ROLLING")

    wait = limiter.acquire(kind)

    assert wait == pytest.approx(30.0)
    assert clock.sleeps == [wait]


def test_local_pause_over_max_wait_raises() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=100, searches_per_second=5, clock=clock, sleep=clock.sleep)
    limiter.pause(3600.0, "the daily request limit is used up")

    for kind in ("general", "search"):
        with pytest.raises(LimiterPaused) as raised:
            limiter.acquire(kind, max_wait_seconds=120.0)
        assert raised.value.reason == "the daily request limit is used up"
        assert raised.value.seconds == pytest.approx(3600.0)
        assert "the daily request limit is used up" in str(raised.value)
    assert clock.sleeps == []


def test_local_shorter_pause_keeps_longer() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=100, searches_per_second=5, clock=clock, sleep=clock.sleep)
    limiter.pause(3600.0, "the daily request limit is used up")
    limiter.pause(2.0, "HubSpot answered 429 TEN_SECONDLY_ROLLING")

    with pytest.raises(LimiterPaused) as raised:
        limiter.acquire("general", max_wait_seconds=120.0)

    assert raised.value.seconds == pytest.approx(3600.0)
    # The 3,600 s still to wait come from the daily limit, so the error must name that reason.
    assert raised.value.reason == "the daily request limit is used up"


def test_local_full_window_over_max_wait_raises() -> None:
    # The RateLimiter protocol raises LimiterPaused when the wait would exceed max_wait_seconds, and
    # SharedRateLimiter does so. A full window is such a wait even without a pause.
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=1, searches_per_second=5, clock=clock, sleep=clock.sleep)
    limiter.acquire("general")

    with pytest.raises(LimiterPaused):
        limiter.acquire("general", max_wait_seconds=1.0)
    assert clock.sleeps == []


def test_local_lower_limit_lowers_only() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=10, searches_per_second=5, clock=clock, sleep=clock.sleep)

    limiter.lower_general_limit(3)
    limiter.lower_general_limit(50)
    waits = [limiter.acquire("general") for _ in range(4)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(GENERAL_WINDOW)


def test_local_lower_limit_keeps_one_request() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=10, searches_per_second=5, clock=clock, sleep=clock.sleep)

    limiter.lower_general_limit(0)
    waits = [limiter.acquire("general") for _ in range(2)]

    assert waits == [0.0, pytest.approx(GENERAL_WINDOW)]


def test_local_lower_limit_leaves_search() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(requests_per_ten_seconds=10, searches_per_second=4, clock=clock, sleep=clock.sleep)

    limiter.lower_general_limit(1)
    waits = [limiter.acquire("search") for _ in range(4)]

    assert waits == [0.0, 0.0, 0.0, 0.0]


# SharedRateLimiter


@pytest.fixture
def make_shared(database_url: str, db_schema: str) -> Iterator[Any]:
    """Build SharedRateLimiter objects on the test schema, each with its own connection, and close them after."""
    created: list[SharedRateLimiter] = []

    def make(
        sleep: Any,
        *,
        portal: str = "portal-a",
        access_token: str = TOKEN,
        requests_per_ten_seconds: int = 100,
        searches_per_second: int = 5,
    ) -> SharedRateLimiter:
        limiter = SharedRateLimiter(
            database_url,
            db_schema,
            portal,
            access_token,
            requests_per_ten_seconds,
            searches_per_second,
            sleep=sleep,
        )
        created.append(limiter)
        return limiter

    yield make
    for limiter in created:
        limiter.close()


def window_rows(db: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return db.execute("SELECT * FROM callsync_rate_limit_windows ORDER BY bucket").fetchall()


def record_reserved_slots(db: psycopg.Connection[Any]) -> None:
    """Copy every slot the reservation function appends into `reserved_slots`, because the window row keeps
    only the newest ones."""
    db.execute("CREATE TABLE reserved_slots (bucket text NOT NULL, slot timestamptz NOT NULL)")
    db.execute(
        "CREATE FUNCTION record_reserved_slot() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF cardinality(NEW.slots) > 0 AND NEW.slots IS DISTINCT FROM OLD.slots THEN"
        " INSERT INTO reserved_slots VALUES (NEW.bucket, NEW.slots[cardinality(NEW.slots)]); END IF;"
        " RETURN NEW; END $$"
    )
    db.execute(
        "CREATE TRIGGER record_reserved_slot AFTER UPDATE ON callsync_rate_limit_windows"
        " FOR EACH ROW EXECUTE FUNCTION record_reserved_slot()"
    )


def test_schema_fixture_has_rate_limit_function(db: psycopg.Connection[Any], db_schema: str) -> None:
    found = db.execute(
        "SELECT count(*) AS functions FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %s AND p.proname = 'callsync_reserve_rate_slot'",
        (db_schema,),
    ).fetchone()

    assert found is not None
    assert found["functions"] == 1


def test_shared_objects_share_one_window(make_shared: Any) -> None:
    sleep = RecordedSleep()
    first = make_shared(sleep, searches_per_second=5)
    second = make_shared(sleep, searches_per_second=5)

    started = time.monotonic()
    waits: list[float] = []
    elapsed: list[float] = []
    for limiter in [first, second] * 5:
        waits.append(limiter.acquire("search"))
        elapsed.append(time.monotonic() - started)

    assert waits[:5] == [0.0] * 5
    for index in range(5, 10):
        # Reservation k waits for reservation k - 5, made after `started`, to leave the window.
        assert waits[index] > 0, f"acquire {index + 1} did not wait"
        assert waits[index] <= SEARCH_WINDOW + 1e-6
        assert waits[index] >= SEARCH_WINDOW - elapsed[index] - 0.005
    assert sleep.waits == waits[5:]


def test_shared_concurrent_slots_hold_limit(make_shared: Any, db: psycopg.Connection[Any]) -> None:
    record_reserved_slots(db)
    limiters = [make_shared(RecordedSleep(), searches_per_second=5) for _ in range(4)]
    start = threading.Barrier(len(limiters))
    failures: list[BaseException] = []

    def acquire_ten(limiter: SharedRateLimiter) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(10):
                limiter.acquire("search")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=acquire_ten, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert failures == []
    rows = db.execute("SELECT bucket, slot FROM reserved_slots ORDER BY slot").fetchall()
    assert {row["bucket"] for row in rows} == {"portal-a:search"}
    slots = [row["slot"].timestamp() for row in rows]
    assert len(slots) == 40
    assert len(set(slots)) == 40, "two acquires got the same slot"
    assert max_in_any_window(slots, SEARCH_WINDOW) <= 5


def test_shared_pause_seen_by_other_object(make_shared: Any, db: psycopg.Connection[Any]) -> None:
    pausing = make_shared(RecordedSleep())
    other_sleep = RecordedSleep()
    other = make_shared(other_sleep)

    pausing.pause(3600.0, "the daily request limit is used up")

    for kind in ("general", "search"):
        with pytest.raises(LimiterPaused) as raised:
            other.acquire(kind, max_wait_seconds=120.0)
        assert raised.value.reason == "the daily request limit is used up"
        assert 3500.0 < raised.value.seconds <= 3600.0
    assert other_sleep.waits == []
    assert [row["slots"] for row in window_rows(db)] == [[], []], "a paused acquire reserved a slot"


def test_shared_pause_held_back_until_end(make_shared: Any) -> None:
    sleep = RecordedSleep()
    pausing = make_shared(RecordedSleep())
    other = make_shared(sleep)

    pausing.pause(30.0, "HubSpot answered 429 TEN_SECONDLY_ROLLING")
    wait = other.acquire("general")

    assert 29.0 < wait <= 30.0
    assert sleep.waits == [wait]


def test_shared_shorter_pause_keeps_longer(make_shared: Any) -> None:
    first = make_shared(RecordedSleep())
    second = make_shared(RecordedSleep())

    first.pause(3600.0, "the daily request limit is used up")
    second.pause(2.0, "HubSpot answered 429 TEN_SECONDLY_ROLLING")

    with pytest.raises(LimiterPaused) as raised:
        second.acquire("general", max_wait_seconds=120.0)
    assert raised.value.seconds > 3500.0
    # The wait still ahead comes from the daily limit, so the error must name that reason.
    assert raised.value.reason == "the daily request limit is used up"


def test_shared_full_window_over_max_wait_raises(make_shared: Any, db: psycopg.Connection[Any]) -> None:
    sleep = RecordedSleep()
    limiter = make_shared(sleep, searches_per_second=1)
    limiter.acquire("search")

    with pytest.raises(LimiterPaused):
        limiter.acquire("search", max_wait_seconds=0.1)

    assert sleep.waits == []
    (row,) = [row for row in window_rows(db) if row["bucket"].endswith(":search")]
    assert len(row["slots"]) == 1, "the rejected acquire reserved a slot"


def test_shared_token_buckets_independent(make_shared: Any) -> None:
    first = make_shared(RecordedSleep(), access_token=TOKEN, requests_per_ten_seconds=2)
    second = make_shared(RecordedSleep(), access_token=OTHER_TOKEN, requests_per_ten_seconds=2)

    first_waits = [first.acquire("general") for _ in range(3)]
    second_waits = [second.acquire("general") for _ in range(2)]

    assert first_waits[:2] == [0.0, 0.0]
    assert first_waits[2] > 0
    assert second_waits == [0.0, 0.0]


def test_shared_search_bucket_per_portal(make_shared: Any) -> None:
    # HubSpot limits searches per account, whichever token sends them.
    first = make_shared(RecordedSleep(), portal="portal-a", access_token=TOKEN, searches_per_second=1)
    same_portal = make_shared(RecordedSleep(), portal="portal-a", access_token=OTHER_TOKEN, searches_per_second=1)
    other_portal = make_shared(RecordedSleep(), portal="portal-b", access_token=TOKEN, searches_per_second=1)

    assert first.acquire("search") == 0.0
    assert same_portal.acquire("search") > 0
    assert other_portal.acquire("search") == 0.0


def test_shared_table_stores_no_token(make_shared: Any, db: psycopg.Connection[Any]) -> None:
    first = make_shared(RecordedSleep(), access_token=TOKEN)
    second = make_shared(RecordedSleep(), access_token=OTHER_TOKEN)
    for limiter in (first, second):
        limiter.acquire("general")
        limiter.acquire("search")
    first.pause(1.0, "HubSpot answered 429 TEN_SECONDLY_ROLLING")

    rows = db.execute("SELECT bucket, row_to_json(w)::text AS stored FROM callsync_rate_limit_windows w").fetchall()

    general_buckets = [row["bucket"] for row in rows if ":general:" in row["bucket"]]
    assert len(general_buckets) == 2, "the two tokens share a general bucket"
    for row in rows:
        assert TOKEN not in row["stored"]
        assert OTHER_TOKEN not in row["stored"]
        # A prefix of the token would leak part of it too.
        assert TOKEN[:12] not in row["stored"]


def test_shared_lower_limit_lowers_only(make_shared: Any) -> None:
    limiter = make_shared(RecordedSleep(), requests_per_ten_seconds=10)

    limiter.lower_general_limit(2)
    limiter.lower_general_limit(50)
    waits = [limiter.acquire("general") for _ in range(3)]

    assert waits[:2] == [0.0, 0.0]
    assert GENERAL_WINDOW - 1.0 < waits[2] <= GENERAL_WINDOW


def test_shared_reconnects_after_dropped_connection(make_shared: Any, db: psycopg.Connection[Any]) -> None:
    limiter = make_shared(RecordedSleep())
    limiter.acquire("general")

    terminated = db.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS terminated FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND query LIKE %s",
        ("%callsync_reserve_rate_slot%",),
    ).fetchone()
    assert terminated is not None
    assert terminated["terminated"] == 1

    assert limiter.acquire("general") == 0.0
    (row,) = [row for row in window_rows(db) if ":general:" in row["bucket"]]
    assert len(row["slots"]) == 2


def test_shared_rejects_invalid_schema(database_url: str) -> None:
    with pytest.raises(ValueError, match="Invalid database schema name"):
        SharedRateLimiter(database_url, "public; DROP TABLE x", "portal-a", TOKEN, 100, 5)
