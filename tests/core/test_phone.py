import pytest

from callsync_dagster.core.phone import PhoneNumber, PhoneProblem, normalize_phone_number

SWEDISH_FORMATS = [
    ("070-123 45 67", "+46701234567"),
    ("070 123 45 67", "+46701234567"),
    ("0701234567", "+46701234567"),
    ("+46 70 123 45 67", "+46701234567"),
    ("+46 (0)70-123 45 67", "+46701234567"),
    ("0046701234567", "+46701234567"),
    ("46701234567", "+46701234567"),
    ("+46070 123 45 67", "+46701234567"),
    ("+46701234567", "+46701234567"),
    ("072-345 67 89", "+46723456789"),
    ("073-757 36 88", "+46737573688"),
    ("076-111 22 33", "+46761112233"),
    ("079-000 12 34", "+46790001234"),
    ("08-123 456 78", "+46812345678"),
    ("031-12 34 56", "+4631123456"),
]

NORDIC_FORMATS = [
    ("+47 412 34 567", "+4741234567", "NO"),
    ("004741234567", "+4741234567", "NO"),
    ("+45 20 12 34 56", "+4520123456", "DK"),
    ("+358 40 1234567", "+358401234567", "FI"),
    ("00358401234567", "+358401234567", "FI"),
]


@pytest.mark.parametrize(("raw", "e164"), SWEDISH_FORMATS, ids=[raw for raw, _ in SWEDISH_FORMATS])
def test_swedish_format_normalised(raw: str, e164: str) -> None:
    number = normalize_phone_number(raw, "SE")
    assert isinstance(number, PhoneNumber)
    assert number.e164 == e164
    assert number.region == "SE"


@pytest.mark.parametrize(("raw", "e164", "region"), NORDIC_FORMATS, ids=[raw for raw, _, _ in NORDIC_FORMATS])
def test_nordic_number_keeps_country(raw: str, e164: str, region: str) -> None:
    number = normalize_phone_number(raw, "SE")
    assert isinstance(number, PhoneNumber)
    assert number.e164 == e164
    assert number.region == region


@pytest.mark.parametrize("raw", ["", "   ", None, "anonymous", "Unknown", "PRIVATE", "+46"])
def test_hidden_caller(raw: str | None) -> None:
    problem = normalize_phone_number(raw, "SE")
    assert isinstance(problem, PhoneProblem)
    assert problem.kind == "hidden"


@pytest.mark.parametrize("raw", ["junk", "123", "1234", "070-12", "+46 70 123 45 67 89 00", "ext. 201"])
def test_invalid_number(raw: str) -> None:
    problem = normalize_phone_number(raw, "SE")
    assert isinstance(problem, PhoneProblem)
    assert problem.kind == "invalid"
    assert repr(raw) in problem.reason


def test_national_significant_number_drops_trunk_zero() -> None:
    number = normalize_phone_number("070-123 45 67", "SE")
    assert isinstance(number, PhoneNumber)
    assert number.national_significant_number == "701234567"


def test_display_national_at_home_international_abroad() -> None:
    home = normalize_phone_number("+46701234567", "SE")
    abroad = normalize_phone_number("+4741234567", "SE")
    assert isinstance(home, PhoneNumber)
    assert isinstance(abroad, PhoneNumber)
    assert home.display == "070-123 45 67"
    assert abroad.display.startswith("+47 ")


def test_default_region_changes_national_reading() -> None:
    number = normalize_phone_number("41234567", "NO")
    assert isinstance(number, PhoneNumber)
    assert number.e164 == "+4741234567"
