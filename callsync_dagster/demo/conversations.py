"""Demo data of the legacy workflow: ElevenLabs conversations with their insights, one per case it handles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from callsync_dagster.db.schema_name import validate_schema_name

_AGENT_NUMBER = "+46852250000"


@dataclass(frozen=True)
class DemoConversation:
    """One seeded conversation, its insights, and what the workflow should make of it."""

    conversation_id: str
    case: str
    status: str
    phone_call: dict[str, str] | None
    collected: dict[str, str]
    turns: list[dict[str, Any]]
    summary: str
    title: str
    insights: dict[str, Any] | None
    # synced, skipped or pending
    expected_status: str
    expects_task: bool = False


@dataclass
class DemoConversations:
    conversations: list[DemoConversation] = field(default_factory=list)

    def expected_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {"synced": 0, "skipped": 0, "pending": 0}
        for conversation in self.conversations:
            counts[conversation.expected_status] += 1
        synced = [conversation for conversation in self.conversations if conversation.expected_status == "synced"]
        counts["deals"] = counts["notes"] = len(synced)
        counts["tasks"] = sum(1 for conversation in synced if conversation.expects_task)
        return counts


def _turns(customer_lines: list[str]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = [
        {
            "role": "agent",
            "message": "Hej och välkommen till Solkraft! Vad kan jag hjälpa dig med?",
            "time_in_call_secs": 0,
        }
    ]
    for index, line in enumerate(customer_lines):
        turns.append({"role": "user", "message": line, "time_in_call_secs": 5 + index * 9})
        # A tool call: ElevenLabs stores it as a turn without a message.
        turns.append({"role": "agent", "message": None, "time_in_call_secs": 8 + index * 9})
        turns.append({"role": "agent", "message": "Tack, det noterar jag.", "time_in_call_secs": 9 + index * 9})
    return turns


def build_demo_conversations() -> DemoConversations:
    """Return the demo conversations: every path of the workflow once, with Swedish data."""

    def inbound(number: str) -> dict[str, str]:
        return {"direction": "inbound", "agent_number": _AGENT_NUMBER, "external_number": number}

    def insights(sentiment: str | None, stage: str | None, next_steps: list[str]) -> dict[str, Any]:
        return {
            "sentiment": sentiment,
            "deal_stage": stage,
            "key_points": ["Villa i Uppsala med söderläge", "Vill ha installation före sommaren"],
            "competitor_mentions": ["Solenergi Norr AB"] if sentiment == "positive" else [],
            "next_steps": next_steps,
        }

    conversations = [
        DemoConversation(
            "conv_demo_positive_offert",
            "positive, inbound, new number",
            "done",
            inbound("+46701230001"),
            {},
            _turns(["Jag vill ha en offert på solceller till villan.", "Taket är runt 90 kvadratmeter."]),
            "Kunden vill ha en offert på solceller, tak på 90 kvm.",
            "Offert på solceller",
            insights("positive", "qualified", ["Skicka offert senast fredag", "Boka platsbesök"]),
            "synced",
            True,
        ),
        DemoConversation(
            "conv_demo_neutral_fraga",
            "neutral: no task",
            "done",
            inbound("+46701230002"),
            {},
            _turns(["Hur lång leveranstid har ni just nu?"]),
            "Kunden frågade om leveranstider.",
            "Fråga om leveranstid",
            insights("neutral", "appointmentscheduled", ["Svara med leveranstid per e-post"]),
            "synced",
        ),
        DemoConversation(
            "conv_demo_negative_klagomal",
            "negative: no task",
            "done",
            inbound("+46701230003"),
            {},
            _turns(["Installationen blev försenad två veckor, jag är missnöjd."]),
            "Kunden klagar på en försenad installation.",
            "Klagomål på försening",
            insights("negative", "closedlost", ["Ring upp kunden"]),
            "synced",
        ),
        DemoConversation(
            "conv_demo_unknown_stage",
            "positive, unknown deal stage: default stage",
            "done",
            inbound("+46701230004"),
            {},
            _turns(["Vi väntar på budgetbeslut men är intresserade."]),
            "Intresserad kund som väntar på budget.",
            "Intresse, väntar på budget",
            insights("positive", "väntar på budget", ["Följ upp om två veckor"]),
            "synced",
            True,
        ),
        DemoConversation(
            "conv_demo_outbound",
            "positive, outbound: the customer is external_number",
            "done",
            {"direction": "outbound", "agent_number": _AGENT_NUMBER, "external_number": "+46731230005"},
            {},
            _turns(["Ja, jag är fortfarande intresserad av batterilagring."]),
            "Uppföljningssamtal om batterilagring.",
            "Uppföljning batterilager",
            insights("Positive", "presentation", ["Skicka produktblad"]),
            "synced",
            True,
        ),
        DemoConversation(
            "conv_demo_collected_email",
            "no phone call, an email the agent collected",
            "done",
            None,
            {"kundens_epost": "erik.lind@example.se"},
            _turns(["Min e-post är erik.lind@example.se."]),
            "Webbsamtal, kunden lämnade sin e-post.",
            "Webbsamtal om solceller",
            insights("neutral", "lead", ["Skicka information per e-post"]),
            "synced",
        ),
        DemoConversation(
            "conv_demo_collected_number",
            "no phone call, a national number the agent collected",
            "done",
            None,
            {"telefonnummer": "070-123 00 07"},
            _turns(["Ni kan nå mig på 070-123 00 07."]),
            "Webbsamtal, kunden lämnade sitt nummer.",
            "Återuppringning",
            insights(None, None, []),
            "synced",
        ),
        DemoConversation(
            "conv_demo_no_contact",
            "no number and nothing collected: skipped",
            "done",
            None,
            {},
            _turns(["Jag ville bara fråga en sak."]),
            "Anonym fråga.",
            "Anonym fråga",
            insights("neutral", None, []),
            "skipped",
        ),
        DemoConversation(
            "conv_demo_in_progress",
            "not done yet: waits",
            "in-progress",
            inbound("+46701230009"),
            {},
            _turns(["Hej, jag ringer om..."]),
            "",
            "Pågående samtal",
            None,
            "pending",
        ),
    ]
    return DemoConversations(conversations)


def insert_demo_conversations(conn: psycopg.Connection[Any], schema: str, demo: DemoConversations) -> None:
    """Insert the demo conversations and their insights; existing conversation ids are left alone."""
    validate_schema_name(schema)
    started = datetime.now(UTC) - timedelta(hours=2)
    with conn.transaction():
        for index, conversation in enumerate(demo.conversations):
            metadata: dict[str, Any] = {
                "metadata": {"start_time_unix_secs": int((started + timedelta(minutes=7 * index)).timestamp())},
                "analysis": {
                    "call_summary_title": conversation.title,
                    "transcript_summary": conversation.summary,
                    "data_collection_results": {
                        key: {"value": value, "rationale": "Kunden sa det under samtalet."}
                        for key, value in conversation.collected.items()
                    },
                },
            }
            if conversation.phone_call is not None:
                metadata["metadata"]["phone_call"] = conversation.phone_call
            inserted = conn.execute(
                sql.SQL(
                    "INSERT INTO {} (conversation_id, agent_id, status, transcript, summary, metadata)"
                    " VALUES (%s, 'agent_solkraft_sv', %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ).format(sql.Identifier(schema, "conversations")),
                (
                    conversation.conversation_id,
                    conversation.status,
                    json.dumps(conversation.turns, ensure_ascii=False),
                    conversation.summary or None,
                    Jsonb(metadata),
                ),
            ).rowcount
            if inserted and conversation.insights is not None:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (conversation_id, sentiment, key_points, deal_stage, competitor_mentions,"
                        " next_steps) VALUES (%s, %s, %s, %s, %s, %s)"
                    ).format(sql.Identifier(schema, "insights")),
                    (
                        conversation.conversation_id,
                        conversation.insights["sentiment"],
                        conversation.insights["key_points"],
                        conversation.insights["deal_stage"],
                        conversation.insights["competitor_mentions"],
                        conversation.insights["next_steps"],
                    ),
                )
