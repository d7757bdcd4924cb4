"""The schedule that runs the backfill job every night for the day before."""

from dagster import DefaultScheduleStatus, build_schedule_from_partitioned_job

from callsync_dagster.jobs import backfill_calls_by_day

# 03:00 in the partitions' time zone: the previous day is complete and transcripts have had hours to arrive.
nightly_backfill_schedule = build_schedule_from_partitioned_job(
    backfill_calls_by_day,
    name="nightly_backfill_schedule",
    hour_of_day=3,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Runs backfill_calls_by_day every night for the previous day.",
)
