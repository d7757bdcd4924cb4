"""The CALL engagement's body: summary first, then the transcript by speaker turn, as escaped HTML."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any

from callsync_dagster.core.hubspot_constants import MAX_TEXT_PROPERTY_LENGTH
from callsync_dagster.core.models import Transcription

_SPEAKER_NAMES = {
    "agent": "Agent",
    "customer": "Customer",
    "caller": "Customer",
    "user": "Customer",
    "client": "Customer",
}

# Keys seen for the speaker and the text of an utterance across transcription services.
_SPEAKER_KEYS = ("speaker", "role", "speaker_label", "label")
_TEXT_KEYS = ("text", "message", "transcript", "content")


@dataclass(frozen=True)
class Turn:
    speaker: str | None
    text: str


def parse_speaker_turns(speaker_labels: Any) -> list[Turn]:
    """Read utterances from `speaker_labels`, tolerating missing keys, null text and other shapes.

    Accepts a list of utterance objects, or an object wrapping that list under `utterances`,
    `segments` or `turns`. Utterances without text are dropped; anything else unreadable yields no turns,
    and the caller then falls back to the full text.
    """
    if isinstance(speaker_labels, dict):
        for key in ("utterances", "segments", "turns"):
            if isinstance(speaker_labels.get(key), list):
                speaker_labels = speaker_labels[key]
                break
    if not isinstance(speaker_labels, list):
        return []

    turns = []
    for utterance in speaker_labels:
        if not isinstance(utterance, dict):
            continue
        text = _first_text(utterance, _TEXT_KEYS)
        if not text:
            continue
        turns.append(Turn(speaker=_first_text(utterance, _SPEAKER_KEYS), text=text))
    return turns


def _first_text(mapping: dict[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def speaker_display_name(speaker: str | None) -> str:
    if speaker is None:
        return "Speaker"
    return _SPEAKER_NAMES.get(speaker.lower(), speaker)


def build_call_body(
    summary: str | None,
    turns: list[Turn],
    full_text: str | None,
    missing_transcript_note: str | None = None,
    max_length: int = MAX_TEXT_PROPERTY_LENGTH,
) -> str:
    """Build `hs_call_body` within `max_length` characters.

    The transcript is cut at a turn boundary, never inside a turn, and a visible marker gives how many
    turns were left out. Without speaker turns the full text is used, one paragraph per line. A summary
    too long to leave room for the marker is cut on its own, with its own marker.
    """
    summary_html = ""
    if summary and summary.strip():
        summary_html = "<p><strong>Summary</strong></p>" + _paragraphs(summary)

    if missing_transcript_note:
        transcript_blocks = [f"<p><em>{escape(missing_transcript_note)}</em></p>"]
    elif turns:
        transcript_blocks = [
            f"<p><strong>{escape(speaker_display_name(turn.speaker))}:</strong> {escape(turn.text)}</p>"
            for turn in turns
        ]
    elif full_text and full_text.strip():
        transcript_blocks = [f"<p>{escape(line.strip())}</p>" for line in full_text.splitlines() if line.strip()]
    else:
        transcript_blocks = ["<p><em>No transcript is available for this call.</em></p>"]

    heading = "<p><strong>Transcript</strong></p>"
    reserve = len(_truncation_marker(len(transcript_blocks), len(transcript_blocks)))

    if len(summary_html) + len(heading) + reserve > max_length:
        summary_html = _cut_summary(summary or "", max_length - len(heading) - reserve)

    body = summary_html + heading
    for shown, block in enumerate(transcript_blocks):
        remaining_after = len(transcript_blocks) - shown - 1
        room = max_length - len(body) - len(block)
        if remaining_after > 0:
            room -= reserve
        if room < 0:
            return body + _truncation_marker(shown, len(transcript_blocks))
        body += block
    return body


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{escape(line.strip())}</p>" for line in text.splitlines() if line.strip())


def _cut_summary(summary: str, max_length: int) -> str:
    marker = "<p><em>[Summary truncated to fit HubSpot's property size limit]</em></p>"
    heading = "<p><strong>Summary</strong></p>"
    budget = max_length - len(marker) - len(heading)
    # Cut the raw text, not the HTML, so that no entity or tag is split. Escaping can only grow the text,
    # so the cut shrinks until the escaped result fits.
    cut = summary[: max(budget, 0)]
    while cut and len(_paragraphs(cut)) > budget:
        cut = cut[: len(cut) - max(1, (len(_paragraphs(cut)) - budget) // 6 + 1)]
    return heading + _paragraphs(cut) + marker


def _truncation_marker(shown: int, total: int) -> str:
    return (
        f"<p><em>[Transcript truncated to fit HubSpot's property size limit: {shown} of {total} turns shown]</em></p>"
    )


def build_body(transcription: Transcription | None, transcription_status: str | None) -> str:
    """Build the CALL body, saying why when there is no transcript to show."""
    transcription = transcription or Transcription(source="none")
    turns = parse_speaker_turns(transcription.speaker_labels)
    has_text = bool(turns) or bool(transcription.full_text and transcription.full_text.strip())

    missing_note = None
    if not has_text:
        if transcription_status == "failed":
            missing_note = "No transcript: the transcription of this call failed."
        elif transcription_status == "completed":
            missing_note = "No transcript: the transcription finished but its text is empty."
        else:
            missing_note = (
                "No transcript: the transcription was not finished when this call was logged "
                f"(transcription status {transcription_status or 'unknown'})."
            )
    return build_call_body(transcription.summary, turns, transcription.full_text, missing_note)
