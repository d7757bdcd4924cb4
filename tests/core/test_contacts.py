from callsync_dagster.core.contacts import choose_contact, confirm_contact_matches, new_contact_properties
from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number


def _number(raw: str) -> PhoneNumber:
    number = normalize_phone_number(raw, "SE")
    assert isinstance(number, PhoneNumber)
    return number


def _contact(contact_id: str, phone: str | None = None, mobile: str | None = None) -> dict:
    return {"id": contact_id, "properties": {"phone": phone, "mobilephone": mobile}}


def test_confirm_matches_any_stored_format() -> None:
    results = [_contact("11", phone="+46 70-123 45 67"), _contact("12", mobile="0701234567")]
    assert confirm_contact_matches(_number("+46701234567"), results, "SE") == ["11", "12"]


def test_confirm_drops_false_candidates() -> None:
    # HubSpot's calculated property ignores the country code, so a Norwegian number can come back.
    results = [_contact("21", phone="+47 70 12 34 56"), _contact("22", phone="070-999 99 99")]
    assert confirm_contact_matches(_number("070-123 45 67"), results, "SE") == []


def test_confirm_ignores_missing_properties() -> None:
    results = [{"id": "31", "properties": {}}, {"id": "32"}]
    assert confirm_contact_matches(_number("070-123 45 67"), results, "SE") == []


def test_choose_single_match() -> None:
    match = choose_contact(["501"])
    assert match is not None
    assert match.contact_id == "501"
    assert match.ambiguous_ids == ()


def test_choose_lowest_id_when_ambiguous() -> None:
    match = choose_contact(["1200", "999", "1100"])
    assert match is not None
    assert match.contact_id == "999"
    assert match.ambiguous_ids == ("999", "1100", "1200")


def test_choose_none_without_matches() -> None:
    assert choose_contact([]) is None


def test_new_contact_has_e164_and_name() -> None:
    properties = new_contact_properties(_number("0701234567"))
    assert properties["phone"] == "+46701234567"
    assert properties["firstname"] == "070-123 45 67"
