import subprocess
import sys
from pathlib import Path

from dagster import DefaultSensorStatus, Definitions

from callsync_dagster.definitions import defs
from callsync_dagster.jobs import SYNC_CALLS_JOB_NAME

PROJECT_DIR = Path(__file__).resolve().parent.parent


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(SYNC_CALLS_JOB_NAME).name == SYNC_CALLS_JOB_NAME


def test_sensor_runs_by_default() -> None:
    sensor = defs.resolve_sensor_def("call_sessions_due_sensor")
    assert sensor.default_status is DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30


def test_workspace_validates() -> None:
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(dagster.parent), "CALLSYNC_DATABASE_URL": "unused", "HUBSPOT_ACCESS_TOKEN": "unused"},
    )
    assert completed.returncode == 0, completed.stderr
    assert "All code locations passed validation" in completed.stderr + completed.stdout
