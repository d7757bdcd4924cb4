"""Settings read from the environment when the code location loads."""

from __future__ import annotations

import os


def int_from_environment(name: str, default: int) -> int:
    """Read a whole number from the environment, naming the variable when its value is not one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"Invalid {name} {raw!r}: set it to a whole number such as {default}.") from error


def portal_token_variables(portal_ids: str) -> dict[str, str]:
    """Map each portal id of a comma-separated list to the variable holding its token, HUBSPOT_ACCESS_TOKEN_<id>."""
    portals = [portal.strip() for portal in portal_ids.split(",") if portal.strip()]
    for portal in portals:
        if not portal.isalnum():
            raise ValueError(
                f"Invalid portal id {portal!r} in HUBSPOT_PORTALS: use the numeric HubSpot portal ids, comma-separated."
            )
    return {portal: f"HUBSPOT_ACCESS_TOKEN_{portal}" for portal in portals}
