"""callsync's benchmark: the sync job against the rate-limited HubSpot stand-in, run by `make bench`."""
