"""Several HubSpot accounts in one deployment: each session syncs with its portal's token, or is skipped."""

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from callsync_dagster.environment import portal_token_variables
from callsync_dagster.hubspot_standin import StandinServer
from callsync_dagster.jobs import sync_calls_to_hubspot
from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource
from callsync_dagster.resources.settings import CallSyncSettings
from tests.conftest import STANDIN_TOKEN, session_row, standin_objects

SECOND_PORTAL = "2222"
SECOND_TOKEN = "second-portal-token"


@pytest.fixture
def two_portal_standin() -> Iterator[StandinServer]:
    with StandinServer(tokens=[STANDIN_TOKEN, SECOND_TOKEN]) as server:
        yield server


@pytest.fixture
def run_two_portals(
    two_portal_standin: StandinServer,
    dagster_instance: DagsterInstance,
    postgres: PostgresResource,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], ExecuteInProcessResult]:
    def run(second_token: str) -> ExecuteInProcessResult:
        monkeypatch.setenv(f"HUBSPOT_ACCESS_TOKEN_{SECOND_PORTAL}", second_token)
        hubspot = HubSpotResource(
            access_token=STANDIN_TOKEN,
            base_url=two_portal_standin.url,
            backoff_initial_seconds=0.01,
            backoff_max_seconds=0.05,
            portal="1111",
            portal_token_variables=portal_token_variables(SECOND_PORTAL),
        )
        return sync_calls_to_hubspot.execute_in_process(
            resources={"postgres": postgres, "hubspot": hubspot, "settings": CallSyncSettings()},
            instance=dagster_instance,
            raise_on_error=False,
        )

    return run


def test_each_portal_syncs_with_its_token(
    run_two_portals: Callable[[str], ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
    two_portal_standin: StandinServer,
) -> None:
    default_portal = insert_session(from_number="070-111 11 11")
    own_id = insert_session(from_number="070-111 11 12", hubspot_portal_id="1111")
    second = insert_session(from_number="070-222 22 22", hubspot_portal_id=SECOND_PORTAL)

    assert run_two_portals(SECOND_TOKEN).success

    assert {session_row(db, session_id)["sync_status"] for session_id in (default_portal, own_id, second)} == {"synced"}
    assert len(standin_objects(two_portal_standin, "calls")) == 3


def test_portal_token_is_the_one_sent(
    run_two_portals: Callable[[str], ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
) -> None:
    second = insert_session(from_number="070-222 22 22", hubspot_portal_id=SECOND_PORTAL)

    result = run_two_portals("a-token-hubspot-rejects")

    assert not result.success
    row = session_row(db, second)
    assert (row["sync_status"], row["sync_reason_code"], row["sync_attempts"]) == ("failed", "hubspot_auth", 0)


def test_portal_without_token_skipped(
    run_two_portals: Callable[[str], ExecuteInProcessResult],
    insert_session: Callable[..., str],
    db: psycopg.Connection[Any],
) -> None:
    unknown = insert_session(hubspot_portal_id="9999")

    assert run_two_portals(SECOND_TOKEN).success

    row = session_row(db, unknown)
    assert (row["sync_status"], row["sync_reason_code"]) == ("skipped", "no_portal_token")
    assert "HUBSPOT_ACCESS_TOKEN_9999" in row["sync_reason"]


def test_portal_list_rejects_bad_id() -> None:
    with pytest.raises(ValueError, match="Invalid portal id 'acme corp'"):
        portal_token_variables("1234, acme corp")
