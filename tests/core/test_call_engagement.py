from datetime import UTC, datetime, timedelta
from uuid import uuid4

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.core.call_engagement import (
    build_call_associations,
    build_call_properties,
    call_duration_ms,
    format_hubspot_timestamp,
)
from callsync_dagster.core.counterparty import Counterparty, find_counterparty
from callsync_dagster.core.models import CallSession

STARTED = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 in Stockholm, the morning clocks go forward


def _session(**overrides: object) -> CallSession:
    values: dict[str, object] = {
        "id": uuid4(),
        "telavox_call_id": "LID-778899",
        "direction": "INBOUND",
        "from_number": "070-123 45 67",
        "to_number": "201",
        "started_at": STARTED,
        "answered_at": STARTED + timedelta(seconds=5),
        "ended_at": STARTED + timedelta(seconds=125),
        "recording_url": "https://recordings.example/abc.mp3",
    }
    values.update(overrides)
    return CallSession.model_validate(values)


def _properties(session: CallSession, owner_id: str | None = "77") -> dict[str, str]:
    counterparty = find_counterparty(session.direction, session.from_number, session.to_number)
    assert isinstance(counterparty, Counterparty)
    return build_call_properties(session, counterparty, "<p>body</p>", owner_id, "Europe/Stockholm", "SE")


def test_answered_call_properties() -> None:
    properties = _properties(_session())
    assert properties["hs_timestamp"] == "2026-03-29T00:30:00.000Z"
    assert properties["hs_call_direction"] == "INBOUND"
    assert properties["hs_call_duration"] == "120000"
    assert properties["hs_call_status"] == hs.CALL_STATUS_COMPLETED
    assert properties["hs_call_disposition"] == hs.DISPOSITION_CONNECTED
    assert properties["hs_call_external_id"] == "LID-778899"
    assert properties["hs_call_from_number"] == "+46701234567"
    assert properties["hubspot_owner_id"] == "77"
    assert properties["hs_call_recording_url"] == "https://recordings.example/abc.mp3"


def test_title_uses_local_date() -> None:
    late = datetime(2026, 4, 2, 22, 30, tzinfo=UTC)  # already 3 April in Stockholm
    properties = _properties(_session(started_at=late, answered_at=None, ended_at=late + timedelta(seconds=30)))
    assert properties["hs_call_title"] == "Inbound call from 070-123 45 67 on 2026-04-03"


def test_outbound_title_and_numbers() -> None:
    properties = _properties(_session(direction="OUTGOING", from_number="08-123 456 78", to_number="+4741234567"))
    assert properties["hs_call_title"].startswith("Outbound call to +47 41 23 45 67")
    assert properties["hs_call_to_number"] == "+4741234567"
    assert properties["hs_call_from_number"] == "+46812345678"


def test_unanswered_call_no_answer() -> None:
    properties = _properties(_session(answered_at=None))
    assert properties["hs_call_status"] == hs.CALL_STATUS_NO_ANSWER
    assert properties["hs_call_disposition"] == hs.DISPOSITION_NO_ANSWER
    assert properties["hs_call_duration"] == "0"


def test_duration_never_negative() -> None:
    session = _session(answered_at=STARTED + timedelta(seconds=60), ended_at=STARTED + timedelta(seconds=10))
    assert call_duration_ms(session) == 0


def test_http_recording_left_out() -> None:
    properties = _properties(_session(recording_url="http://insecure.example/a.mp3"))
    assert "hs_call_recording_url" not in properties


def test_extension_side_left_out() -> None:
    properties = _properties(_session())
    assert "hs_call_to_number" not in properties


def test_no_owner_left_out() -> None:
    properties = _properties(_session(), owner_id=None)
    assert "hubspot_owner_id" not in properties


def test_all_values_are_strings() -> None:
    properties = _properties(_session())
    assert all(isinstance(value, str) for value in properties.values())


def test_timestamp_falls_back_to_ended_at() -> None:
    properties = _properties(_session(started_at=None, answered_at=None))
    assert properties["hs_timestamp"] == "2026-03-29T00:32:05.000Z"


def test_timestamp_converts_offset_to_utc() -> None:
    stockholm_summer = datetime.fromisoformat("2026-04-03T09:00:30.646+02:00")
    assert format_hubspot_timestamp(stockholm_summer) == "2026-04-03T07:00:30.646Z"


def test_associations_contact_company_deal() -> None:
    associations = build_call_associations("501", "601", "701")
    type_ids = [association["types"][0]["associationTypeId"] for association in associations]
    assert type_ids == [hs.CALL_TO_CONTACT, hs.CALL_TO_COMPANY, hs.CALL_TO_DEAL]
    assert [association["to"]["id"] for association in associations] == ["501", "601", "701"]
    assert all(association["types"][0]["associationCategory"] == "HUBSPOT_DEFINED" for association in associations)


def test_associations_skip_missing_ids() -> None:
    associations = build_call_associations("501", None, None)
    assert len(associations) == 1
    assert associations[0]["types"][0]["associationTypeId"] == 194
