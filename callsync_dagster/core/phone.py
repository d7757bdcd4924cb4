"""Phone number normalisation: the formats Telavox delivers, turned into E.164 with `phonenumbers`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

# Values Telavox and PBXs send for a caller who withheld the number.
_HIDDEN_NUMBER_MARKERS = frozenset({"", "anonymous", "unknown", "private", "hidden", "withheld", "restricted"})

# "+46 (0)70-123 45 67": the bracketed trunk zero is a print convention, never dialled.
_BRACKETED_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")


@dataclass(frozen=True)
class PhoneNumber:
    """A valid number in E.164, with the forms HubSpot search and people need."""

    e164: str
    national_significant_number: str
    region: str | None
    display: str


@dataclass(frozen=True)
class PhoneProblem:
    """The reason a raw value is not a usable number. `kind` is `hidden` or `invalid`."""

    kind: str
    raw: str | None

    @property
    def reason(self) -> str:
        if self.kind == "hidden":
            shown = "empty" if not (self.raw or "").strip() else repr(self.raw)
            return f"hidden caller: the number is withheld ({shown}), so there is no contact to match"
        return (
            f"invalid phone number {self.raw!r}: it is not a valid number in any format callsync accepts "
            "(E.164, national, 00-prefixed or bare country code); correct it in the call session to sync it"
        )


def normalize_phone_number(raw: str | None, default_region: str = "SE") -> PhoneNumber | PhoneProblem:
    """Normalise a number as Telavox delivered it, or return the reason it cannot be used.

    National numbers are read in `default_region`; numbers with a country code keep their own country, so
    Norwegian, Danish and Finnish numbers never get +46.
    """
    text = (raw or "").strip()
    if text.lower() in _HIDDEN_NUMBER_MARKERS:
        return PhoneProblem("hidden", raw)

    text = _BRACKETED_TRUNK_ZERO.sub("", text)
    digits = re.sub(r"\D", "", text)
    if not digits:
        return PhoneProblem("invalid", raw)

    # A bare "+46" (country code and nothing else) is how some exchanges mark a withheld number.
    if text.startswith("+") and _is_bare_country_code(digits):
        return PhoneProblem("hidden", raw)

    for candidate in _candidate_spellings(text, digits):
        parsed = _parse(candidate, default_region)
        if parsed is not None:
            return parsed
    return PhoneProblem("invalid", raw)


def _is_bare_country_code(digits: str) -> bool:
    return len(digits) <= 3 and int(digits) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE


def _candidate_spellings(text: str, digits: str) -> list[str]:
    """Spellings to try, most literal first.

    "46701234567" is a number whose "+" was lost. It is tried as international only after the national
    reading fails, because a national number could also start with those digits.
    """
    candidates = [text]
    if not text.startswith("+") and not digits.startswith("0"):
        candidates.append("+" + digits)
    return candidates


def _parse(candidate: str, default_region: str) -> PhoneNumber | None:
    try:
        number = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None

    region = phonenumbers.region_code_for_number(number)
    display_format = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if region == default_region
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return PhoneNumber(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        national_significant_number=phonenumbers.national_significant_number(number),
        region=region,
        display=phonenumbers.format_number(number, display_format),
    )
