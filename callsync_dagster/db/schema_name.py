"""Validation of the configured database schema name."""

from __future__ import annotations

import re

# Unquoted PostgreSQL identifier rules, kept strict on purpose: the name is always quoted in SQL, and a
# plain name avoids surprises in tools that do not quote.
_SCHEMA_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_schema_name(schema: str) -> str:
    """Return `schema` unchanged, or raise ValueError when it is not a plain lower-case SQL identifier."""
    if not _SCHEMA_NAME_PATTERN.fullmatch(schema):
        raise ValueError(
            f"Invalid database schema name {schema!r}: use lower-case letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters (for example 'call_intelligence')."
        )
    return schema
