"""Deterministic benchmark data: call sessions with transcripts, a blocklist and the stand-in's seed.

About 70 % of the sessions come from numbers of contacts seeded in the stand-in, and each of those contacts
calls two or three times. About 20 % come from new numbers, a quarter of which call twice. The other 10 % are
sessions that callsync skips: a hidden number, an invalid number or a blocked number. Every session ended
more than three hours ago with a completed transcription, so all of them are due at once.

All draws come from one `random.Random(seed)`, and only the timestamps depend on `now`. Transcripts are
generated while the rows are copied into PostgreSQL, each from its own seed, so 10,000 transcripts of 50 KB
never sit in memory together.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number
from callsync_dagster.db.schema_name import validate_schema_name
from callsync_dagster.demo.seed_data import (
    AGENTS,
    COMPANY_EXTENSIONS,
    COMPANY_NUMBERS,
    FIRST_OWNER_USER_ID,
    HIDDEN_NUMBER_VALUES,
    MOBILE_PREFIXES,
    NUMBER_STYLES,
    DemoAgent,
    DemoNumber,
)

KNOWN_CONTACT_SHARE = 0.70
SKIPPED_SHARE = 0.10
# The rest of the sessions come from new numbers. This share of them is a second call from a new number.
NEW_NUMBER_REPEAT_SHARE = 0.20
# Seeded contacts per known-contact session: 3/7 gives 600 contacts for 1,400 sessions, 2 or 3 calls each.
CONTACTS_PER_KNOWN_SESSION = 3 / 7
# Shares of the skipped sessions that have a hidden number and an invalid number; the rest are blocked.
HIDDEN_SHARE_OF_SKIPPED = 0.4
INVALID_SHARE_OF_SKIPPED = 0.3

# The number callsync skips a session for, as sync_reason_code.
SKIP_REASON_CODES = {"hidden": "hidden_number", "invalid": "invalid_number", "blocked": "blocked_number"}

# Seeded ids. The stand-in shares one id sequence across owners and object types, and continues after the
# highest seeded id, so these ranges keep clear of the demo owners' ids (2001 to 2006) and of each other.
FIRST_COMPANY_ID = 3001
FIRST_CONTACT_ID = 100_001

FINISHED_CALL_MIN_AGE = timedelta(hours=3)
HISTORY_DAYS = 14
# Transcripts of an everyday call: between 1,500 and 6,000 characters.
EVERYDAY_TRANSCRIPT_CHARS = (1500, 6000)
ENGLISH_CALL_SHARE = 0.25
TELAVOX_ORG_ID = "norrkust"

# Spellings of a number in a call session (Telavox) and in a contact's phone property (typed into HubSpot).
# DemoNumber.render accepts all of them.
SESSION_MOBILE_STYLES = tuple(style for style in NUMBER_STYLES["mobile"] if style not in ("e164_dash", "dash_compact"))
SESSION_MOBILE_STYLE_WEIGHTS = tuple(4 if style == "e164" else 1 for style in SESSION_MOBILE_STYLES)
STORED_MOBILE_STYLES = ("e164", "e164_dash", "dash_compact", "dash_spaces", "spaces", "digits", "e164_spaced")
SESSION_LANDLINE_STYLES = NUMBER_STYLES["stockholm"]
STORED_LANDLINE_STYLES = ("national", "e164_spaced", "e164")
# The share of known and new numbers that are Stockholm landlines; the rest are mobiles.
LANDLINE_SHARE = 0.12

INVALID_NUMBERS = ("070-123", "070-123 45 67 89", "ej tillgängligt", "sip:201@pbx.norrkust.example", "+46 70 12")

OWNER_AGENTS: tuple[DemoAgent, ...] = tuple(agent for agent in AGENTS if agent.owner_id)

_FIRST_NAMES = ("Ingrid", "Göran", "Märit", "Örjan", "Åsa", "Sören", "Ulla", "Kjell", "Agneta", "Mats", "Linnéa")
_LAST_NAMES = ("Sjöberg", "Ekström", "Dahlén", "Nilsson", "Öberg", "Åberg", "Lindahl", "Jönsson", "Bäckström")
_COMPANY_STEMS = ("Nord", "Syd", "Väst", "Öst", "Höglands", "Sjö", "Berg", "Dal", "Skog", "Älv")
_COMPANY_TRADES = ("bygg", "logistik", "energi", "data", "el", "konsult", "transport", "fastigheter", "verkstad")
_ASCII_LETTERS = str.maketrans({"å": "a", "ä": "a", "ö": "o", "é": "e", "Å": "a", "Ä": "a", "Ö": "o"})


# ---------------------------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedSession:
    """One call session, and the outcome callsync must reach for it. The transcript is generated on insert."""

    session_id: str
    telavox_call_id: str
    # known, new, hidden, invalid or blocked
    kind: str
    direction: str
    from_number: str | None
    to_number: str | None
    agent: DemoAgent
    customer_name: str
    customer_company: str
    started_at: datetime
    answered_at: datetime
    ended_at: datetime
    transcript_seed: int
    # E.164 number of the customer, for sessions that sync.
    e164: str | None
    # Seeded contact the CALL must be on, for sessions from a known contact's number.
    contact_id: str | None

    @property
    def reason_code(self) -> str | None:
        """Return the sync_reason_code a skipped session must get, or None for a session that syncs."""
        return SKIP_REASON_CODES.get(self.kind)


@dataclass
class BenchDataset:
    sessions: list[PlannedSession]
    blocked_numbers: list[dict[str, Any]]
    standin_seed: dict[str, Any]
    # None gives everyday transcripts of a few KB. A number gives transcripts of that many characters.
    transcript_chars: int | None
    seeded_contacts: int
    new_numbers: int

    def count(self, kind: str) -> int:
        return sum(1 for session in self.sessions if session.kind == kind)


def build_dataset(
    session_count: int, seed: int, transcript_chars: int | None = None, now: datetime | None = None
) -> BenchDataset:
    """Generate `session_count` call sessions, the blocklist and the stand-in's seed from `seed`."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    generator = _Generator(random.Random(seed), now)

    known = round(session_count * KNOWN_CONTACT_SHARE)
    skipped = round(session_count * SKIPPED_SHARE)
    new = session_count - known - skipped
    hidden = round(skipped * HIDDEN_SHARE_OF_SKIPPED)
    invalid = round(skipped * INVALID_SHARE_OF_SKIPPED)
    blocked = skipped - hidden - invalid

    contacts = generator.make_contacts(max(1, round(known * CONTACTS_PER_KNOWN_SESSION)) if known else 0)
    new_numbers = [generator.customer_number() for _ in range(math.ceil(new * (1 - NEW_NUMBER_REPEAT_SHARE)))]
    blocked_numbers = [generator.new_number("mobile") for _ in range(max(1, blocked // 2) if blocked else 0)]

    plan: list[tuple[str, Any]] = []
    plan += [("known", contact) for contact in generator.spread(contacts, known)]
    plan += [("new", number) for number in generator.spread(new_numbers, new)]
    plan += [("hidden", value) for value in generator.spread(list(HIDDEN_NUMBER_VALUES.values()), hidden)]
    plan += [("invalid", value) for value in generator.spread(list(INVALID_NUMBERS), invalid)]
    plan += [("blocked", number) for number in generator.spread(blocked_numbers, blocked)]
    generator.rng.shuffle(plan)

    sessions = [generator.session(kind, subject) for kind, subject in plan]
    return BenchDataset(
        sessions=sessions,
        blocked_numbers=generator.blocked_rows(blocked_numbers),
        standin_seed=generator.standin_seed(contacts),
        transcript_chars=transcript_chars,
        seeded_contacts=len(contacts),
        new_numbers=len(new_numbers),
    )


# ---------------------------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Contact:
    id: str
    first_name: str
    last_name: str
    email: str
    company_id: str
    company_name: str
    number: DemoNumber
    # "phone" or "mobilephone": the property that contains the number.
    number_property: str
    stored_style: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class _Generator:
    """Draws numbers, contacts and sessions from `rng` in a fixed order."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self._used_e164 = {_e164(raw) for raw in COMPANY_NUMBERS}
        self._used_call_ids: set[str] = set()
        self.companies: list[tuple[str, str, str]] = []

    # -- numbers and picks ------------------------------------------------------------------------------------

    def new_number(self, kind: str) -> DemoNumber:
        """Draw a valid number of `kind` ("mobile" or "stockholm") that nothing else in the dataset has."""
        for _ in range(1000):
            if kind == "mobile":
                digits = f"{self.rng.choice(MOBILE_PREFIXES)[1:]}{self.rng.randrange(10**7):07d}"
            else:
                digits = f"8{self.rng.randint(1, 9)}{self.rng.randrange(10**7):07d}"
            number = DemoNumber(kind, digits)
            if number.e164 in self._used_e164:
                continue
            if not isinstance(normalize_phone_number(number.e164), PhoneNumber):
                continue
            self._used_e164.add(number.e164)
            return number
        raise RuntimeError(f"could not draw an unused valid {kind} number in 1000 attempts")

    def customer_number(self) -> DemoNumber:
        return self.new_number("stockholm" if self.rng.random() < LANDLINE_SHARE else "mobile")

    def session_spelling(self, number: DemoNumber) -> str:
        if number.kind == "mobile":
            style = self.rng.choices(SESSION_MOBILE_STYLES, weights=SESSION_MOBILE_STYLE_WEIGHTS)[0]
        else:
            style = self.rng.choice(SESSION_LANDLINE_STYLES)
        return number.render(style)

    def spread(self, items: list[Any], count: int) -> list[Any]:
        """Return `count` picks of `items`: every item once, then again, the last round a random sample."""
        if not items:
            return []
        picks: list[Any] = []
        while len(picks) + len(items) <= count:
            picks += items
        return picks + self.rng.sample(items, count - len(picks))

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_call_id(self) -> str:
        while True:
            call_id = f"bench-{self.rng.getrandbits(64):016x}"
            if call_id not in self._used_call_ids:
                self._used_call_ids.add(call_id)
                return call_id

    def person_name(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST_NAMES), self.rng.choice(_LAST_NAMES)

    # -- seed -------------------------------------------------------------------------------------------------

    def make_contacts(self, count: int) -> list[_Contact]:
        """Make `count` contacts over a quarter as many companies, each with one number in phone or mobilephone."""
        for index in range(max(3, count // 4) if count else 0):
            name = f"{self.rng.choice(_COMPANY_STEMS)}{self.rng.choice(_COMPANY_TRADES)} AB"
            domain = f"{name.split()[0].lower().translate(_ASCII_LETTERS)}{index}.example"
            self.companies.append((str(FIRST_COMPANY_ID + index), name, domain))

        contacts = []
        for index in range(count):
            company_id, company_name, domain = self.rng.choice(self.companies)
            first, last = self.person_name()
            number = self.customer_number()
            if number.kind == "mobile":
                number_property = self.rng.choice(("phone", "mobilephone"))
                stored_style = self.rng.choice(STORED_MOBILE_STYLES)
            else:
                number_property = "phone"
                stored_style = self.rng.choice(STORED_LANDLINE_STYLES)
            contacts.append(
                _Contact(
                    id=str(FIRST_CONTACT_ID + index),
                    first_name=first,
                    last_name=last,
                    email=f"{first}.{last}.{index}@{domain}".lower().translate(_ASCII_LETTERS),
                    company_id=company_id,
                    company_name=company_name,
                    number=number,
                    number_property=number_property,
                    stored_style=stored_style,
                )
            )
        return contacts

    def standin_seed(self, contacts: list[_Contact]) -> dict[str, Any]:
        """Build the body of POST /_standin/seed: the agents' owners, the companies and the contacts."""
        owners = [
            {
                "id": agent.owner_id,
                "email": agent.agent_user_id.lower(),
                "firstName": agent.first_name,
                "lastName": agent.last_name,
                "userId": FIRST_OWNER_USER_ID + index,
            }
            for index, agent in enumerate(OWNER_AGENTS)
        ]
        companies = [
            {"id": company_id, "properties": {"name": name, "domain": domain, "country": "Sweden"}}
            for company_id, name, domain in self.companies
        ]
        seeded_contacts = [
            {
                "id": contact.id,
                "properties": {
                    "firstname": contact.first_name,
                    "lastname": contact.last_name,
                    "email": contact.email,
                    "company": contact.company_name,
                    contact.number_property: contact.number.render(contact.stored_style),
                },
                "primary_company_id": contact.company_id,
            }
            for contact in contacts
        ]
        return {"owners": owners, "companies": companies, "contacts": seeded_contacts}

    def blocked_rows(self, numbers: list[DemoNumber]) -> list[dict[str, Any]]:
        # Stored as "070-123 45 67" while the sessions spell the number otherwise, so only a lookup by
        # E.164 finds it.
        return [
            {"id": self.new_uuid(), "phone_number": number.render("dash_spaces"), "reason": "Privat nummer"}
            for number in numbers
        ]

    # -- sessions ---------------------------------------------------------------------------------------------

    def session(self, kind: str, subject: Any) -> PlannedSession:
        """Generate one session of `kind`, where `subject` is its contact, its number or its raw number value."""
        rng = self.rng
        contact_id = e164 = None
        if kind == "known":
            customer = self.session_spelling(subject.number)
            customer_name, customer_company = subject.full_name, subject.company_name
            contact_id, e164 = subject.id, subject.number.e164
        else:
            first, last = self.person_name()
            customer_name, customer_company = f"{first} {last}", f"{rng.choice(_COMPANY_STEMS)}bolaget AB"
            if kind in ("new", "blocked"):
                customer = self.session_spelling(subject)
                e164 = subject.e164 if kind == "new" else None
            else:
                customer = subject

        # Hidden callers can only call in, and the others call in two times in three.
        inbound = kind == "hidden" or rng.random() < 2 / 3
        company_side = rng.choice(COMPANY_EXTENSIONS) if rng.random() < 0.7 else rng.choice(COMPANY_NUMBERS)
        from_number, to_number = (customer, company_side) if inbound else (company_side, customer)

        ringing = timedelta(seconds=rng.randint(4, 28))
        talk = timedelta(seconds=rng.randint(30, 900))
        ended_at = self.now - FINISHED_CALL_MIN_AGE - timedelta(seconds=rng.randrange(HISTORY_DAYS * 86_400))
        started_at = ended_at - talk - ringing
        return PlannedSession(
            session_id=self.new_uuid(),
            telavox_call_id=self.new_call_id(),
            kind=kind,
            direction="INBOUND" if inbound else "OUTBOUND",
            from_number=from_number,
            to_number=to_number,
            agent=rng.choice(OWNER_AGENTS),
            customer_name=customer_name,
            customer_company=customer_company,
            started_at=started_at,
            answered_at=started_at + ringing,
            ended_at=ended_at,
            transcript_seed=rng.getrandbits(64),
            e164=e164,
            contact_id=contact_id,
        )


def _e164(raw: str) -> str:
    number = normalize_phone_number(raw)
    if not isinstance(number, PhoneNumber):
        raise ValueError(f"company number {raw!r} is not a valid number")
    return number.e164


# ---------------------------------------------------------------------------------------------------------------
# Transcripts
# ---------------------------------------------------------------------------------------------------------------

# Placeholders: {agent}, {customer}, {company}, {order}, {amount}, {users}, {day}. Each exchange is (topic for
# the summary, the customer's question, the agent's answer).
_OPENINGS = {
    "sv": (
        ("agent", "Norrkust, du pratar med {agent}. Vad kan jag hjälpa till med?"),
        ("customer", "Hej, det är {customer} på {company}."),
    ),
    "en": (
        ("agent", "Norrkust, this is {agent} speaking. How can I help?"),
        ("customer", "Hi, {customer} from {company} here."),
    ),
}
_EXCHANGES = {
    "sv": (
        (
            "fakturan",
            "Vi har fått en faktura på {amount} kronor som inte stämmer med avtalet.",
            "Jag ser avtalet här. Rabatten har inte kommit med, så jag skickar en kreditnota och en ny faktura i dag.",
        ),
        (
            "växeln som tappar samtal",
            "Vår växel tappar samtal efter ungefär en minut sedan i morse.",
            "Jag lägger upp en felanmälan med hög prioritet, och en tekniker ringer upp inom två timmar.",
        ),
        (
            "nya användare",
            "Vi behöver lägga till {users} nya användare från och med nästa månad.",
            "Det går bra. Jag skickar en orderbekräftelse med de nya licenserna i eftermiddag.",
        ),
        (
            "en försenad order",
            "Var är vår order {order}? Den skulle ha kommit i förra veckan.",
            "Den lämnade lagret i Jönköping i går och är framme på {day} enligt fraktbolaget.",
        ),
        (
            "sms-avisering",
            "Kan ni skicka ett sms när leveransen är ute för utkörning?",
            "Självklart, jag lägger in ditt nummer på ordern nu.",
        ),
        (
            "en offert på företagspaketet",
            "Vi funderar på att gå över till ert företagspaket med köfunktion och inspelning.",
            "Då skickar jag en offert senast på {day}, och vi kan boka en demonstration samma vecka.",
        ),
        (
            "röstbrevlådan",
            "Röstbrevlådan skickar inte längre meddelandena till vår e-post.",
            "Vidarekopplingen hade fallit bort. Jag har lagt in den igen, så prova att lämna ett testmeddelande.",
        ),
        (
            "uppsägningstiden",
            "Hur lång uppsägningstid har vi på mobilabonnemangen?",
            "Tre månader enligt ert avtal, men ni kan flytta numren till det nya avtalet utan avgift.",
        ),
    ),
    "en": (
        (
            "the invoice",
            "We received an invoice for {amount} kronor that does not match our agreement.",
            "I can see the agreement here. The discount is missing, so I will send a credit note and a new invoice today.",
        ),
        (
            "dropped calls",
            "Our switchboard has been dropping calls after about a minute since this morning.",
            "I am filing a high-priority fault report, and a technician will call you back within two hours.",
        ),
        (
            "a late order",
            "Where is our order {order}? It was due last week.",
            "It left the warehouse yesterday and the carrier expects to deliver it on {day}.",
        ),
        (
            "new licences",
            "We need {users} more user licences from next month.",
            "No problem. I will send an order confirmation with the new licences this afternoon.",
        ),
        (
            "voicemail",
            "Voicemail no longer reaches our email.",
            "The forwarding address was lost. I have set it again, so please leave a test message.",
        ),
    ),
}
_CLOSINGS = {
    "sv": (("agent", "Finns det något mer jag kan hjälpa till med?"), ("customer", "Nej, det var allt. Tack, hej då!")),
    "en": (("agent", "Is there anything else I can help you with?"), ("customer", "No, that is all. Thanks, bye!")),
}
_SUMMARIES = {
    "sv": "{customer} på {company} ringde om {topics}. {agent} följer upp senast på {day}.",
    "en": "{customer} from {company} called about {topics}. {agent} follows up by {day}.",
}
_AND = {"sv": " och ", "en": " and "}
_DAYS = {"sv": ("måndag", "tisdag", "onsdag", "torsdag", "fredag"), "en": ("Monday", "Tuesday", "Wednesday")}


@dataclass(frozen=True)
class Transcript:
    full_text: str
    speaker_labels: list[dict[str, Any]]
    summary: str
    language: str


def build_transcript(session: PlannedSession, target_chars: int | None) -> Transcript:
    """Generate the session's transcript from its own seed: at least `target_chars` characters, or a few KB.

    The call opens, then the customer and the agent exchange questions and answers until the text is long
    enough, and the call closes.
    """
    rng = random.Random(session.transcript_seed)
    language = "en" if rng.random() < ENGLISH_CALL_SHARE else "sv"
    target = target_chars or rng.randint(*EVERYDAY_TRANSCRIPT_CHARS)
    values = {
        "agent": session.agent.first_name,
        "customer": session.customer_name,
        "company": session.customer_company,
        "day": rng.choice(_DAYS[language]),
    }

    turns = [(role, text.format(**values)) for role, text in _OPENINGS[language]]
    closing = [(role, text.format(**values)) for role, text in _CLOSINGS[language]]
    length = sum(len(text) + 1 for _, text in turns + closing)
    topics: list[str] = []
    while length < target:
        topic, question, answer = rng.choice(_EXCHANGES[language])
        if topic not in topics:
            topics.append(topic)
        numbers = {
            "order": str(rng.randrange(100_000, 999_999)),
            "amount": f"{rng.randrange(2_000, 90_000):,}".replace(",", " "),
            "users": str(rng.randint(2, 40)),
        }
        for role, text in (("customer", question), ("agent", answer)):
            filled = text.format(**values, **numbers)
            turns.append((role, filled))
            length += len(filled) + 1
    turns += closing

    labels = []
    clock = round(rng.uniform(0.2, 1.5), 1)
    for role, text in turns:
        duration = round(1.0 + len(text) / 15, 1)
        labels.append({"speaker": role, "text": text, "start": clock, "end": round(clock + duration, 1)})
        clock = round(clock + duration + rng.uniform(0.2, 1.2), 1)
    named = topics[:3]
    topic_list = _AND[language].join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    summary = _SUMMARIES[language].format(**values, topics=topic_list)
    return Transcript("\n".join(text for _, text in turns), labels, summary, language)


# ---------------------------------------------------------------------------------------------------------------
# Writing the dataset
# ---------------------------------------------------------------------------------------------------------------

SESSION_COLUMNS = (
    "id",
    "telavox_call_id",
    "telavox_org_id",
    "direction",
    "from_number",
    "to_number",
    "agent_user_id",
    "started_at",
    "answered_at",
    "ended_at",
    "recording_url",
    "recording_status",
    "transcription_status",
    "created_at",
)
TRANSCRIPTION_COLUMNS = ("id", "call_session_id", "full_text", "speaker_labels", "summary", "language", "created_at")


def insert_dataset(conn: psycopg.Connection[Any], schema: str, dataset: BenchDataset) -> None:
    """Insert the blocklist, the sessions and their transcriptions into `schema` in one transaction.

    Sessions and transcriptions go through COPY, and each transcript is generated just before its row is
    sent, so the transcripts are never all in memory at once.
    """
    validate_schema_name(schema)
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            sql.SQL("INSERT INTO {} (id, phone_number, reason) VALUES (%(id)s, %(phone_number)s, %(reason)s)").format(
                sql.Identifier(schema, "blocked_numbers")
            ),
            dataset.blocked_numbers,
        )
        with cursor.copy(_copy_statement(schema, "telavox_call_sessions", SESSION_COLUMNS)) as copy:
            for session in dataset.sessions:
                copy.write_row(_session_row(session))
        with cursor.copy(_copy_statement(schema, "transcriptions", TRANSCRIPTION_COLUMNS)) as copy:
            for row in _transcription_rows(dataset):
                copy.write_row(row)


def _copy_statement(schema: str, table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    )


def _session_row(session: PlannedSession) -> tuple[Any, ...]:
    return (
        session.session_id,
        session.telavox_call_id,
        TELAVOX_ORG_ID,
        session.direction,
        session.from_number,
        session.to_number,
        session.agent.agent_user_id,
        session.started_at,
        session.answered_at,
        session.ended_at,
        f"https://recordings.norrkust.example/telavox/{session.telavox_call_id}.mp3",
        "available",
        "completed",
        session.started_at,
    )


def _transcription_rows(dataset: BenchDataset) -> Iterator[tuple[Any, ...]]:
    for session in dataset.sessions:
        transcript = build_transcript(session, dataset.transcript_chars)
        yield (
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"callsync-bench/transcriptions/{session.session_id}")),
            session.session_id,
            transcript.full_text,
            Jsonb(transcript.speaker_labels),
            transcript.summary,
            transcript.language,
            session.ended_at + timedelta(minutes=5),
        )
