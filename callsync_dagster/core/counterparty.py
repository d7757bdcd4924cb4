"""Counterparty selection: the customer's side of a call, never the company's own number."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from callsync_dagster.core.phone import PhoneNumber, PhoneProblem, normalize_phone_number


class CallDirection(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


_DIRECTION_SPELLINGS = {
    "inbound": CallDirection.INBOUND,
    "incoming": CallDirection.INBOUND,
    "in": CallDirection.INBOUND,
    "outbound": CallDirection.OUTBOUND,
    "outgoing": CallDirection.OUTBOUND,
    "out": CallDirection.OUTBOUND,
}


@dataclass(frozen=True)
class Counterparty:
    """The customer's side of a call and the direction it was read with."""

    direction: CallDirection
    # None only when the number is hidden or invalid but the session names its contact already.
    number: PhoneNumber | None
    raw_number: str | None
    # Set when the session had no usable direction and it was read from the numbers instead.
    direction_inferred_from: str | None = None


@dataclass(frozen=True)
class CounterpartyProblem:
    """The reason a session has no counterparty to match, which becomes its skip reason."""

    code: str
    reason: str


def parse_direction(raw: str | None) -> CallDirection | None:
    """Read INBOUND/OUTBOUND, INCOMING/OUTGOING or IN/OUT in any case; None when absent or unknown."""
    if raw is None:
        return None
    return _DIRECTION_SPELLINGS.get(raw.strip().lower())


def find_counterparty(
    direction: str | None,
    from_number: str | None,
    to_number: str | None,
    default_region: str = "SE",
    has_prefilled_contact: bool = False,
) -> Counterparty | CounterpartyProblem:
    """Pick the customer's number: `from_number` for inbound calls, `to_number` for outbound ones.

    A missing or unknown direction is not guessed. It is inferred only when one side is a valid number and
    the other an extension or other non-number, and the result records that. Otherwise the
    session is skipped with the reason.

    With `has_prefilled_contact`, a hidden or invalid customer number is no reason to skip: the
    application already linked the call to its contact, so only the number is missing.
    """
    parsed_direction = parse_direction(direction)

    if parsed_direction is None:
        return _infer_from_numbers(direction, from_number, to_number, default_region)

    raw = from_number if parsed_direction is CallDirection.INBOUND else to_number
    side = "from_number" if parsed_direction is CallDirection.INBOUND else "to_number"
    normalized = normalize_phone_number(raw, default_region)
    if isinstance(normalized, PhoneProblem):
        if has_prefilled_contact:
            return Counterparty(direction=parsed_direction, number=None, raw_number=raw)
        return CounterpartyProblem(
            f"{normalized.kind}_number",
            f"{side} of this {parsed_direction.value.lower()} call: {normalized.reason}",
        )
    return Counterparty(direction=parsed_direction, number=normalized, raw_number=raw)


def _infer_from_numbers(
    direction: str | None, from_number: str | None, to_number: str | None, default_region: str
) -> Counterparty | CounterpartyProblem:
    from_parsed = normalize_phone_number(from_number, default_region)
    to_parsed = normalize_phone_number(to_number, default_region)
    from_valid = isinstance(from_parsed, PhoneNumber)
    to_valid = isinstance(to_parsed, PhoneNumber)
    # Only an extension or other non-number marks the company's side. A hidden side is a withheld
    # customer, and reading the other side as the customer would match the company's own number.
    from_is_extension = isinstance(from_parsed, PhoneProblem) and from_parsed.kind == "invalid"
    to_is_extension = isinstance(to_parsed, PhoneProblem) and to_parsed.kind == "invalid"

    if isinstance(from_parsed, PhoneNumber) and to_is_extension:
        return Counterparty(
            CallDirection.INBOUND,
            from_parsed,
            from_number,
            direction_inferred_from="only from_number is a number",
        )
    if isinstance(to_parsed, PhoneNumber) and from_is_extension:
        return Counterparty(
            CallDirection.OUTBOUND, to_parsed, to_number, direction_inferred_from="only to_number is a number"
        )
    if from_valid or to_valid:
        return CounterpartyProblem(
            "unknown_direction",
            f"unknown call direction {direction!r}: expected INBOUND or OUTBOUND (or INCOMING/OUTGOING), and "
            f"the numbers (from {from_number!r}, to {to_number!r}) do not show which side is the customer; "
            "set direction on the call session to sync it",
        )
    return CounterpartyProblem(
        "unknown_direction",
        f"unknown call direction {direction!r} and neither number is valid "
        f"(from {from_number!r}, to {to_number!r}); set direction and the numbers on the call session",
    )
