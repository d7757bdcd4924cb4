import pytest

from callsync_dagster.core.call_body import Turn, build_call_body, parse_speaker_turns

LIMIT = 65_536


def test_summary_before_transcript() -> None:
    body = build_call_body("Kunden vill ha offert.", [Turn("agent", "Hej!"), Turn("customer", "Hej hej")], None)
    assert body.index("Summary") < body.index("Transcript")
    assert "<p><strong>Agent:</strong> Hej!</p>" in body
    assert "<p><strong>Customer:</strong> Hej hej</p>" in body


def test_all_text_escaped() -> None:
    body = build_call_body("<b>bold</b> & co", [Turn("<i>agent</i>", "<script>alert(1)</script>")], None)
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in body
    assert "&lt;i&gt;agent&lt;/i&gt;" in body


def test_long_transcript_cut_at_turn_boundary() -> None:
    turns = [Turn("agent", f"turn {index} " + "å" * 990) for index in range(100)]
    body = build_call_body("Kort sammanfattning", turns, None)
    assert len(body) <= LIMIT
    assert "truncated" in body
    shown = body.count("<strong>Agent:</strong>")
    assert 0 < shown < 100
    assert f"{shown} of 100 turns shown" in body
    # The last shown turn is whole: its paragraph closes before the marker.
    assert body.endswith("turns shown]</em></p>")
    assert f"turn {shown - 1} " in body
    assert f"turn {shown} " not in body


def test_short_transcript_not_cut() -> None:
    body = build_call_body(None, [Turn("agent", "a" * 1000)], None)
    assert "truncated" not in body


def test_escaping_counted_in_limit() -> None:
    # Each '&' grows to five characters when escaped.
    turns = [Turn("customer", "&" * 5000) for _ in range(20)]
    body = build_call_body(None, turns, None)
    assert len(body) <= LIMIT
    assert "truncated" in body


def test_huge_summary_cut_with_marker() -> None:
    body = build_call_body("ö&" * 50_000, [Turn("agent", "hej")], None)
    assert len(body) <= LIMIT
    assert "Summary truncated" in body
    assert "<strong>Agent:</strong> hej" in body


def test_full_text_fallback_by_line() -> None:
    body = build_call_body(None, [], "Rad ett\n\nRad två")
    assert "<p>Rad ett</p><p>Rad två</p>" in body


def test_missing_transcript_note_shown() -> None:
    body = build_call_body("Summary text", [], None, missing_transcript_note="No transcript: the transcription failed.")
    assert "<em>No transcript: the transcription failed.</em>" in body
    assert "Summary text" in body


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([{"speaker": "agent", "text": "Hej", "start": 0.0, "end": 1.0}], [Turn("agent", "Hej")]),
        ([{"speaker": "agent", "text": None}, {"speaker": "customer", "text": "Ja"}], [Turn("customer", "Ja")]),
        ([{"text": "utan talare"}], [Turn(None, "utan talare")]),
        ([{"role": "user", "message": "ElevenLabs-form"}], [Turn("user", "ElevenLabs-form")]),
        ({"utterances": [{"speaker": "A", "text": "wrapped"}]}, [Turn("A", "wrapped")]),
        (["not a dict", 5, None], []),
        ("just a string", []),
        (None, []),
        ({"other": 1}, []),
    ],
    ids=["plain", "null text", "no speaker", "role and message", "wrapped", "junk items", "string", "null", "dict"],
)
def test_parse_speaker_turns(labels: object, expected: list[Turn]) -> None:
    assert parse_speaker_turns(labels) == expected
