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
