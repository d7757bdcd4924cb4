from datetime import UTC, datetime, timedelta

import pytest

from callsync_dagster.core.retry_policy import next_attempt_at

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("attempts", "minutes"), [(1, 5), (2, 10), (3, 20), (4, 40), (8, 360)])
def test_delay_doubles_up_to_max(attempts: int, minutes: int) -> None:
    assert next_attempt_at(NOW, attempts, 10, 5, 360) == NOW + timedelta(minutes=minutes)


def test_gives_up_at_max_attempts() -> None:
    assert next_attempt_at(NOW, 5, 5, 5, 360) is None
