"""Dagster resources: the only places in callsync that do I/O (PostgreSQL and HubSpot)."""

from callsync_dagster.resources.hubspot import HubSpotResource
from callsync_dagster.resources.postgres import PostgresResource

__all__ = ["HubSpotResource", "PostgresResource"]
