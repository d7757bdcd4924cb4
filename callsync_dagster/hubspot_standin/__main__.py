"""Serve the HubSpot stand-in: python -m callsync_dagster.hubspot_standin --port 8765 --token TOKEN."""

import sys

from callsync_dagster.hubspot_standin.server import main

sys.exit(main())
