"""The pure core of callsync: the rules that turn a call session into HubSpot objects, with no I/O."""
