import pytest

from callsync_dagster.core.counterparty import (
    CallDirection,
    Counterparty,
    CounterpartyProblem,
    find_counterparty,
    parse_direction,
)

CUSTOMER = "070-123 45 67"
CUSTOMER_E164 = "+46701234567"
COMPANY = "08-123 456 78"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("INBOUND", CallDirection.INBOUND),
        ("inbound", CallDirection.INBOUND),
        ("INCOMING", CallDirection.INBOUND),
        (" incoming ", CallDirection.INBOUND),
        ("OUTBOUND", CallDirection.OUTBOUND),
        ("outgoing", CallDirection.OUTBOUND),
        ("OUTGOING", CallDirection.OUTBOUND),
        (None, None),
        ("internal", None),
        ("", None),
    ],
)
def test_parse_direction(raw: str | None, expected: CallDirection | None) -> None:
    assert parse_direction(raw) is expected


def test_inbound_uses_from_number() -> None:
    result = find_counterparty("INBOUND", CUSTOMER, COMPANY)
    assert isinstance(result, Counterparty)
    assert result.number.e164 == CUSTOMER_E164
    assert result.direction is CallDirection.INBOUND
    assert result.direction_inferred_from is None


def test_outbound_uses_to_number() -> None:
    result = find_counterparty("OUTGOING", COMPANY, CUSTOMER)
    assert isinstance(result, Counterparty)
    assert result.number.e164 == CUSTOMER_E164
    assert result.direction is CallDirection.OUTBOUND


def test_company_side_never_matched() -> None:
    # The customer's side is hidden; the company's valid number must not be used instead.
    result = find_counterparty("INBOUND", "anonymous", COMPANY)
    assert isinstance(result, CounterpartyProblem)
    assert result.code == "hidden_number"
    assert "from_number" in result.reason


def test_prefilled_contact_tolerates_hidden_number() -> None:
    result = find_counterparty("INBOUND", "anonymous", COMPANY, has_prefilled_contact=True)
    assert isinstance(result, Counterparty)
    assert result.number is None
    assert result.direction is CallDirection.INBOUND


def test_prefilled_contact_needs_direction() -> None:
    result = find_counterparty(None, "anonymous", "", has_prefilled_contact=True)
    assert isinstance(result, CounterpartyProblem)
    assert result.code == "unknown_direction"


def test_invalid_counterparty_skipped() -> None:
    result = find_counterparty("OUTBOUND", COMPANY, "12")
    assert isinstance(result, CounterpartyProblem)
    assert result.code == "invalid_number"


def test_unknown_direction_inferred_from_extension() -> None:
    result = find_counterparty(None, "201", CUSTOMER)
    assert isinstance(result, Counterparty)
    assert result.direction is CallDirection.OUTBOUND
    assert result.direction_inferred_from == "only to_number is a number"


def test_unknown_direction_inferred_inbound() -> None:
    result = find_counterparty("sideways", CUSTOMER, "12")
    assert isinstance(result, Counterparty)
    assert result.direction is CallDirection.INBOUND
    assert result.direction_inferred_from is not None


def test_unknown_direction_hidden_side_not_inferred() -> None:
    # Reading the company's number as the customer would create a contact for the company itself.
    result = find_counterparty(None, "anonymous", COMPANY)
    assert isinstance(result, CounterpartyProblem)
    assert result.code == "unknown_direction"


def test_unknown_direction_two_numbers_skipped() -> None:
    result = find_counterparty(None, CUSTOMER, COMPANY)
    assert isinstance(result, CounterpartyProblem)
    assert result.code == "unknown_direction"
    assert "None" in result.reason


def test_unknown_direction_no_numbers_skipped() -> None:
    result = find_counterparty("weird", "x", "")
    assert isinstance(result, CounterpartyProblem)
    assert result.code == "unknown_direction"
    assert "'weird'" in result.reason
