"""The days the backfill job is partitioned by: the local day a call started."""

from __future__ import annotations

import os

from dagster import DailyPartitionsDefinition

# Days follow the company's clock, so a call at 00:30 Stockholm time counts on that day, and the days of a
# daylight-saving change are 23 and 25 hours long.
call_days = DailyPartitionsDefinition(
    start_date=os.environ.get("CALLSYNC_BACKFILL_START_DATE", "2025-01-01"),
    timezone=os.environ.get("CALLSYNC_TIMEZONE", "Europe/Stockholm"),
)
