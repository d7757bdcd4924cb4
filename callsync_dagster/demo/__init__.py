"""Demo data for callsync: realistic call sessions and the HubSpot stand-in's seed."""
