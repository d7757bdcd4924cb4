"""Local HubSpot CRM stand-in: an HTTP server that responds like HubSpot's v3/v4 CRM API, for tests and demos."""

from callsync_dagster.hubspot_standin.app import create_app
from callsync_dagster.hubspot_standin.server import StandinServer
from callsync_dagster.hubspot_standin.state import StandinError, StandinState

__all__ = ["StandinError", "StandinServer", "StandinState", "create_app"]
