"""Deterministic demo data: call sessions, transcripts, a blocklist and the HubSpot stand-in's seed.

Every session is generated in one category, a case of Telavox data that callsync must handle. It carries
the outcome that callsync's rules give it: synced, skipped with a reason code, or not eligible for a run yet.
Those outcomes assume contact_policy "create" and a transcript wait between 10 minutes and 3 hours (the
default is 120 minutes). All generated data comes from one `random.Random(seed)`. Only the timestamps
depend on `now`, so ids stay the same across reruns and `insert_demo_dataset` can be run again without
duplicating rows.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from callsync_dagster.core.phone import PhoneNumber, normalize_phone_number
from callsync_dagster.db.schema_name import validate_schema_name

DEFAULT_COUNT = 200
DEFAULT_SEED = 7

SYNCED = "synced"
SKIPPED = "skipped"
NOT_ELIGIBLE = "not_eligible"

Outcome = tuple[str, str | None]

# Finished calls end at least this long before `now`, longer than any sensible transcript wait, so their
# transcription status never delays them. "Recent" calls end 10 minutes before `now`, so any transcript
# wait longer than that keeps them out of a run.
FINISHED_CALL_MIN_AGE = timedelta(hours=3)
RECENT_CALL_AGE = timedelta(minutes=10)
HISTORY_DAYS = 14
OFFICE_TIMEZONE = ZoneInfo("Europe/Stockholm")

TELAVOX_ORG_ID = "norrkust"

# The company's own side of a call: agents' extensions (never valid numbers) and its switchboard numbers.
COMPANY_EXTENSIONS = ("201", "204", "215", "1042", "1107")
COMPANY_NUMBERS = ("+46 8 505 500 00", "08-505 500 10", "+46317001200")

MOBILE_PREFIXES = ("070", "072", "073", "076", "079")
HIDDEN_NUMBER_VALUES = {
    "hidden_empty": "",
    "hidden_null": None,
    "hidden_anonymous": "anonymous",
    "hidden_unknown": "unknown",
    "hidden_private": "private",
    "hidden_bare_country_code": "+46",
}

# Fixed HubSpot ids, so sessions can carry a prefilled contact or deal id. The stand-in shares one id
# sequence across owners and object types, hence the separate ranges.
FIRST_OWNER_ID = 2001
FIRST_COMPANY_ID = 3001
FIRST_CONTACT_ID = 4001
FIRST_DEAL_ID = 6001
FIRST_OWNER_USER_ID = 9_100_001


# ---------------------------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class DemoDataset:
    """Rows for the application's tables, the stand-in's seed and the outcome each session must reach."""

    sessions: list[dict[str, Any]]
    transcriptions: list[dict[str, Any]]
    blocked_numbers: list[dict[str, Any]]
    standin_seed: dict[str, Any]
    # Session id to ("synced", None), ("skipped", reason code) or ("not_eligible", why).
    expected: dict[str, Outcome]
    # Session id to the category it was generated in.
    categories: dict[str, str]
    # Session id to the seeded contact its CALL must be associated with, for synced sessions whose contact
    # is prefilled or matched by phone. Sessions whose contact callsync creates are absent.
    expected_contact_ids: dict[str, str]
    generated_at: datetime

    def expected_counts(self) -> dict[str, dict[str, int]]:
        """Count the expected outcomes by status and the skipped sessions by reason code."""
        by_status = Counter(status for status, _ in self.expected.values())
        by_skip_reason = Counter(reason for status, reason in self.expected.values() if status == SKIPPED)
        return {
            "by_status": dict(sorted(by_status.items())),
            "by_skip_reason": {reason or "": count for reason, count in sorted(by_skip_reason.items())},
        }


# ---------------------------------------------------------------------------------------------------------------
# Phone numbers
# ---------------------------------------------------------------------------------------------------------------

_COUNTRY_CODES = {
    "mobile": "46",
    "stockholm": "46",
    "gothenburg": "46",
    "norway": "47",
    "denmark": "45",
    "finland": "358",
}
FOREIGN_KINDS = ("norway", "denmark", "finland")

# The spellings each kind of number can be rendered in. Mobile spellings are those Telavox delivers,
# plus "e164_dash" and "dash_compact", which people type into HubSpot.
NUMBER_STYLES = {
    "mobile": (
        "dash_spaces",
        "spaces",
        "digits",
        "e164",
        "e164_spaced",
        "bracket_trunk",
        "prefix_00",
        "bare_country",
        "plus46_trunk",
        "e164_dash",
        "dash_compact",
    ),
    "stockholm": ("national", "e164", "e164_spaced", "prefix_00"),
    "gothenburg": ("national", "e164", "e164_spaced", "prefix_00"),
    "norway": ("spaced", "e164", "prefix_00"),
    "denmark": ("spaced", "e164", "prefix_00"),
    "finland": ("spaced", "e164", "prefix_00"),
}


@dataclass(frozen=True)
class DemoNumber:
    """A customer's number: its kind and national significant number (no country code, no trunk zero)."""

    kind: str
    digits: str

    @property
    def e164(self) -> str:
        return f"+{_COUNTRY_CODES[self.kind]}{self.digits}"

    def render(self, style: str) -> str:
        """Spell the number in `style`, one of NUMBER_STYLES[kind]."""
        if style not in NUMBER_STYLES[self.kind]:
            raise ValueError(
                f"style {style!r} does not apply to a {self.kind} number; use one of {NUMBER_STYLES[self.kind]}"
            )
        if style == "e164":
            return self.e164
        if style == "prefix_00":
            return f"00{_COUNTRY_CODES[self.kind]}{self.digits}"
        if self.kind == "mobile":
            return _render_mobile(self.digits, style)
        if self.kind in ("stockholm", "gothenburg"):
            return _render_landline(self.digits, style)
        return _render_foreign(self.kind, self.digits)


def _render_mobile(digits: str, style: str) -> str:
    # digits is the nine-digit national significant number, e.g. "701234567".
    area = digits[:2]
    groups = f"{digits[2:5]} {digits[5:7]} {digits[7:]}"
    spellings = {
        "dash_spaces": f"0{area}-{groups}",
        "spaces": f"0{area} {groups}",
        "digits": f"0{digits}",
        "e164_spaced": f"+46 {area} {groups}",
        "bracket_trunk": f"+46 (0){area}-{groups}",
        "bare_country": f"46{digits}",
        "plus46_trunk": f"+460{digits}",
        "e164_dash": f"+46 {area}-{groups}",
        "dash_compact": f"0{area}-{digits[2:]}",
    }
    return spellings[style]


def _render_landline(digits: str, style: str) -> str:
    # Stockholm numbers are "8" and eight digits ("08-123 456 78"), Gothenburg ones "31" and six ("031-12 34 56").
    if digits.startswith("8"):
        area, groups = "8", f"{digits[1:4]} {digits[4:7]} {digits[7:]}"
    else:
        area, groups = "31", f"{digits[2:4]} {digits[4:6]} {digits[6:]}"
    if style == "national":
        return f"0{area}-{groups}"
    return f"+46 {area} {groups}"


def _render_foreign(kind: str, digits: str) -> str:
    if kind == "norway":
        return f"+47 {digits[:3]} {digits[3:5]} {digits[5:]}"
    if kind == "denmark":
        return f"+45 {digits[:2]} {digits[2:4]} {digits[4:6]} {digits[6:]}"
    return f"+358 {digits[:2]} {digits[2:5]} {digits[5:]}"


# ---------------------------------------------------------------------------------------------------------------
# People and companies
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoAgent:
    """A Telavox user who takes and makes calls, and the HubSpot owner id they map to, if any."""

    agent_user_id: str
    first_name: str
    last_name: str
    owner_id: str | None

    @property
    def kind(self) -> str:
        if "@" not in self.agent_user_id:
            return "not_email"
        return "owner" if self.owner_id else "no_owner"


AGENTS = (
    DemoAgent("asa.lindqvist@norrkust.example", "Åsa", "Lindqvist", str(FIRST_OWNER_ID)),
    DemoAgent("orjan.bergstrom@norrkust.example", "Örjan", "Bergström", str(FIRST_OWNER_ID + 1)),
    DemoAgent("marta.hakansson@norrkust.example", "Märta", "Håkansson", str(FIRST_OWNER_ID + 2)),
    DemoAgent("bjorn.ostlund@norrkust.example", "Björn", "Östlund", str(FIRST_OWNER_ID + 3)),
    # Telavox stores this address with capitals and HubSpot in lower case: owner lookup must ignore case.
    DemoAgent("Karin.Nyberg@norrkust.example", "Karin", "Nyberg", str(FIRST_OWNER_ID + 4)),
    DemoAgent("johan.akesson@norrkust.example", "Johan", "Åkesson", str(FIRST_OWNER_ID + 5)),
    DemoAgent("lena.soderberg@norrkust.example", "Lena", "Söderberg", None),
    DemoAgent("per.ahlgren@norrkust.example", "Per", "Ahlgren", None),
    DemoAgent("ext-214", "Åke", "Fransson", None),
    DemoAgent("Sofie Ängström", "Sofie", "Ängström", None),
)
_AGENT_WEIGHTS = tuple(6 if agent.kind == "owner" else 1 for agent in AGENTS)


@dataclass(frozen=True)
class DemoCompany:
    id: str
    name: str
    domain: str
    city: str
    country: str
    # Kind of the contacts' numbers: "mobile" for Swedish companies, else the country's kind.
    number_kind: str
    landline_kind: str | None = None


COMPANIES = (
    DemoCompany(
        str(FIRST_COMPANY_ID), "Nordlund Bygg AB", "nordlundbygg.example", "Stockholm", "Sweden", "mobile", "stockholm"
    ),
    DemoCompany(
        str(FIRST_COMPANY_ID + 1),
        "Åkerström Logistik AB",
        "akerstromlogistik.example",
        "Göteborg",
        "Sweden",
        "mobile",
        "gothenburg",
    ),
    DemoCompany(str(FIRST_COMPANY_ID + 2), "Fjällvind Energi AB", "fjallvind.example", "Östersund", "Sweden", "mobile"),
    DemoCompany(str(FIRST_COMPANY_ID + 3), "Kvarnby Bageri AB", "kvarnbybageri.example", "Malmö", "Sweden", "mobile"),
    DemoCompany(
        str(FIRST_COMPANY_ID + 4),
        "Söderhamns Verkstad AB",
        "soderhamnsverkstad.example",
        "Söderhamn",
        "Sweden",
        "mobile",
    ),
    DemoCompany(
        str(FIRST_COMPANY_ID + 5), "Ystads Trädgård & Café AB", "ystadstradgard.example", "Ystad", "Sweden", "mobile"
    ),
    DemoCompany(str(FIRST_COMPANY_ID + 6), "Bergen Marine AS", "bergenmarine.example", "Bergen", "Norway", "norway"),
    DemoCompany(str(FIRST_COMPANY_ID + 7), "Aarhus Design ApS", "aarhusdesign.example", "Aarhus", "Denmark", "denmark"),
    DemoCompany(
        str(FIRST_COMPANY_ID + 8), "Tampereen Kone Oy", "tampereenkone.example", "Tampere", "Finland", "finland"
    ),
)

# Companies of callers who are not in HubSpot yet.
PROSPECT_COMPANIES = (
    "Lindholmens Fastigheter AB",
    "Vättern Fiske AB",
    "Hälsingegårdar Turism AB",
    "Östgöta El & VVS AB",
    "Kiruna Gruvservice AB",
    "Gotlands Ullspinneri AB",
)

_FIRST_NAMES = {
    "mobile": (
        "Ingrid",
        "Göran",
        "Märit",
        "Örjan",
        "Åsa",
        "Sören",
        "Ulla",
        "Kjell",
        "Agneta",
        "Mats",
        "Linnéa",
        "Håkan",
        "Birgitta",
        "Jörgen",
        "Elsa",
    ),
    "norway": ("Sigrid", "Øystein", "Kari", "Håvard"),
    "denmark": ("Mette", "Søren", "Anne", "Jens"),
    "finland": ("Mikko", "Päivi", "Jukka", "Aino"),
}
_LAST_NAMES = {
    "mobile": (
        "Sjöberg",
        "Ekström",
        "Dahlén",
        "Nilsson",
        "Öberg",
        "Åberg",
        "Lindahl",
        "Jönsson",
        "Bäckström",
        "Fält",
        "Wästberg",
        "Strömgren",
        "Ågren",
        "Lövgren",
    ),
    "norway": ("Haugen", "Solberg", "Bakke", "Dahl"),
    "denmark": ("Sørensen", "Kjær", "Mølgaard", "Holm"),
    "finland": ("Virtanen", "Mäkinen", "Heikkilä", "Korhonen"),
}
_EMAIL_LETTERS = str.maketrans({"å": "a", "ä": "a", "ö": "o", "é": "e", "ø": "o", "æ": "ae", "ü": "u"})

# Numbers of each seeded contact, as (company index, plan). Plans: "phone" (a mobile in `phone`),
# "mobilephone" (a mobile in `mobilephone` only), "landline_and_mobile" (a landline in `phone` and a mobile
# in `mobilephone`), "foreign" (the company's country's number in `phone`).
_CONTACT_PLAN = (
    (0, "phone"),
    (0, "landline_and_mobile"),
    (1, "phone"),
    (1, "landline_and_mobile"),
    (2, "phone"),
    (2, "mobilephone"),
    (3, "phone"),
    (3, "mobilephone"),
    (4, "phone"),
    (4, "phone"),
    (5, "mobilephone"),
    (5, "phone"),
    (6, "foreign"),
    (6, "foreign"),
    (7, "foreign"),
    (8, "foreign"),
    (0, "mobilephone"),
    (1, "phone"),
)
# Spellings of mobile numbers stored in HubSpot, cycled through the contacts.
_STORED_MOBILE_STYLES = (
    "e164_dash",
    "dash_compact",
    "dash_spaces",
    "e164",
    "spaces",
    "bracket_trunk",
    "prefix_00",
    "digits",
)


@dataclass(frozen=True)
class DemoContact:
    id: str
    first_name: str
    last_name: str
    email: str | None
    company: DemoCompany
    # (number, spelling stored in HubSpot) for the `phone` and `mobilephone` properties.
    phone: tuple[DemoNumber, str] | None
    mobilephone: tuple[DemoNumber, str] | None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def to_seed(self) -> dict[str, Any]:
        properties = {"firstname": self.first_name, "lastname": self.last_name, "company": self.company.name}
        if self.email:
            properties["email"] = self.email
        if self.phone:
            properties["phone"] = self.phone[0].render(self.phone[1])
        if self.mobilephone:
            properties["mobilephone"] = self.mobilephone[0].render(self.mobilephone[1])
        return {"id": self.id, "properties": properties, "primary_company_id": self.company.id}


# ---------------------------------------------------------------------------------------------------------------
# Transcripts
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Script:
    language: str
    summary: str
    turns: tuple[tuple[str, str], ...]


# Placeholders: {agent} (first name), {customer} (full name), {company}, {order}, {amount}, {city}.
_SCRIPTS = (
    _Script(
        "sv",
        "{customer} frågade efter order {order}. Den beräknas komma fram på fredag, och ett sms skickas när den "
        "är ute för utkörning.",
        (
            ("agent", "Norrkust, du pratar med {agent}. Vad kan jag hjälpa till med?"),
            ("customer", "Hej, det är {customer} på {company}. Jag undrar var vår order {order} är någonstans."),
            ("agent", "Ett ögonblick så tittar jag. Den lämnade lagret i Jönköping i tisdags."),
            ("customer", "Okej. När kan vi räkna med att den är framme?"),
            ("agent", "Enligt fraktbolaget på fredag förmiddag."),
            ("customer", "Kan ni skicka ett sms när den är ute för utkörning?"),
            ("agent", "Självklart, jag lägger in ditt nummer på ordern nu."),
            ("customer", "Tack för hjälpen, hej då!"),
        ),
    ),
    _Script(
        "sv",
        "Fakturan på {amount} kronor saknade den avtalade rabatten på tio procent. En kreditnota och en ny "
        "faktura skickas i dag.",
        (
            ("agent", "Hej, {agent} på Norrkust ekonomi."),
            (
                "customer",
                "Hej, {customer} här från {company}. Vi har fått en faktura på {amount} kronor, men vi "
                "hade avtalat om tio procents rabatt.",
            ),
            ("agent", "Jag ser avtalet här. Rabatten har inte kommit med, det är vårt fel."),
            ("customer", "Ska vi betala den som den är och få tillbaka mellanskillnaden?"),
            ("agent", "Nej, vänta med betalningen. Jag skickar en kreditnota och en ny faktura i dag."),
            ("customer", "Perfekt. Skicka dem till vår ekonomiadress, tack."),
        ),
    ),
    _Script(
        "sv",
        "{company} vill ha en offert på tjugo arbetsplatser till kontoret i {city}. {agent} skickar offerten "
        "senast torsdag och har bokat en demo på tisdag.",
        (
            ("agent", "Norrkust, {agent} här."),
            (
                "customer",
                "Hej! {customer} på {company}. Vi öppnar ett kontor i {city} och behöver telefoni till tjugo personer.",
            ),
            ("agent", "Vad roligt. Behöver ni växel med köer, eller räcker det med mobilabonnemang?"),
            ("customer", "Vi vill ha en växel med kö, och samtalen ska helst spelas in."),
            ("agent", "Då föreslår jag vårt företagspaket. Jag skickar en offert senast torsdag."),
            ("customer", "Bra. Kan vi boka en demo nästa vecka också?"),
            ("agent", "Absolut, jag skickar en inbjudan till tisdag klockan tio."),
        ),
    ),
    _Script(
        "sv",
        "Växeln hos {company} tappar samtal sedan i morse. Felanmälan är registrerad med hög prioritet, och en "
        "tekniker ringer tillbaka inom två timmar.",
        (
            ("agent", "Norrkust support, {agent}."),
            ("customer", "Hej, {customer} från {company}. Sedan i morse tappar vi samtal efter ungefär en minut."),
            ("agent", "Det låter inte bra. Gäller det alla användare eller bara några?"),
            ("customer", "Alla, såvitt jag vet. Det började runt halv nio."),
            ("agent", "Jag lägger upp en felanmälan med hög prioritet. En tekniker ringer dig inom två timmar."),
            ("customer", "Tack. Ring gärna på det här numret."),
            ("agent", "Det gör vi. Hej så länge!"),
        ),
    ),
    _Script(
        "en",
        "{customer} asked about order {order}. It leaves the warehouse on Monday and the tracking number follows "
        "by email.",
        (
            ("agent", "Norrkust, this is {agent} speaking. How can I help?"),
            ("customer", "Hi, {customer} from {company}. I'm calling about order {order}."),
            ("agent", "Let me look that up. It's packed and leaves our warehouse on Monday."),
            ("customer", "Great. Will we get a tracking number?"),
            ("agent", "Yes, you'll get it by email as soon as the carrier collects it."),
            ("customer", "Perfect, thanks for your help."),
        ),
    ),
    _Script(
        "en",
        "{company} asked for volume pricing for a new office in {city}. {agent} will send a quote for a "
        "twelve-month term by Friday.",
        (
            ("agent", "Good morning, Norrkust sales, {agent} here."),
            (
                "customer",
                "Hello, this is {customer} at {company}. We're opening an office in {city} and need "
                "about thirty lines.",
            ),
            ("agent", "Happy to help. Would you prefer a twelve or a twenty-four month term?"),
            ("customer", "Twelve months to start with, please."),
            ("agent", "Then I'll send you a quote with volume pricing by Friday."),
            ("customer", "Sounds good. Send it to me directly."),
        ),
    ),
    _Script(
        "en",
        "Voicemail-to-email stopped working for {company} yesterday. {agent} reset the mailbox and the customer "
        "confirmed a test message arrived.",
        (
            ("agent", "Norrkust support, {agent} speaking."),
            ("customer", "Hi, {customer} here. Since yesterday our voicemails no longer reach our email."),
            ("agent", "I can see the mailbox lost its forwarding address. I've reset it now."),
            ("customer", "Let me check. Yes, the test message just arrived."),
            ("agent", "Great. Anything else I can help with today?"),
            ("customer", "No, that's all. Thanks!"),
        ),
    ),
)

_CITIES = ("Umeå", "Luleå", "Västerås", "Örebro", "Linköping", "Malmö", "Jönköping")

# Marks the tests look for in generated transcripts.
LONG_TRANSCRIPT_MIN_CHARS = 70_000
SUPERSEDED_DRAFT_MARK = "[automatic draft]"


@dataclass(frozen=True)
class _Speaker:
    """Names of the agent, the customer and the customer's company, as a transcript mentions them."""

    agent: str
    customer: str
    company: str


# ---------------------------------------------------------------------------------------------------------------
# Categories
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoCategory:
    """A case callsync must handle: how to generate one session of it and the outcome it must reach."""

    name: str
    outcome: Outcome
    build: Callable[[_Builder], dict[str, Any]]
    # Sessions every dataset has of this category.
    minimum: int = 1
    # Relative share of the sessions generated beyond the minimums, 0 for rare cases.
    filler_weight: int = 0


def _synced() -> Outcome:
    return (SYNCED, None)


def _skipped(reason_code: str) -> Outcome:
    return (SKIPPED, reason_code)


_NOT_ENDED = (NOT_ELIGIBLE, "the call has not ended: ended_at is null")
_TRANSCRIPT_AWAITED = (
    NOT_ELIGIBLE,
    "the transcription is not finished and the call ended 10 minutes ago, within the transcript wait",
)


# ---------------------------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------------------------


class _Builder:
    """Generator of the seed, the blocklist and the sessions. Every draw comes from `rng` in a fixed order."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.sessions: list[dict[str, Any]] = []
        self.transcriptions: list[dict[str, Any]] = []
        self.expected_contact_ids: dict[str, str] = {}
        self._used_e164: set[str] = set()
        self._used_call_ids: set[str] = set()
        self._mobile_count = 0
        self._round_robin: Counter[str] = Counter()

        for raw in COMPANY_NUMBERS:
            self._used_e164.add(_e164(raw))
        self.company_phones = {
            company.id: self.new_number(company.landline_kind or company.number_kind) for company in COMPANIES
        }
        self.contacts = self._make_contacts()
        self.ambiguous_pair = self._make_ambiguous_pair()
        self.deals = self._make_deals()
        self.blocked = self._make_blocklist()

    # -- ids, numbers and picks -----------------------------------------------------------------------------------

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_call_id(self) -> str:
        # NOTE: the shape of real Telavox call ids is unverified; these opaque hex strings only need to be unique.
        while True:
            call_id = f"{self.rng.getrandbits(64):016x}"
            if call_id not in self._used_call_ids:
                self._used_call_ids.add(call_id)
                return call_id

    def new_number(self, kind: str) -> DemoNumber:
        """Draw a valid number of `kind` that no other customer, contact or blocklist row has."""
        for _ in range(1000):
            number = DemoNumber(kind, self._draw_digits(kind))
            if number.e164 in self._used_e164:
                continue
            if not isinstance(normalize_phone_number(number.e164), PhoneNumber):
                continue
            self._used_e164.add(number.e164)
            return number
        raise RuntimeError(f"could not draw an unused valid {kind} number in 1000 attempts")

    def _draw_digits(self, kind: str) -> str:
        rng = self.rng
        if kind == "mobile":
            # Cycling the prefixes gives every mobile range in every dataset.
            prefix = MOBILE_PREFIXES[self._mobile_count % len(MOBILE_PREFIXES)]
            self._mobile_count += 1
            return f"{prefix[1:]}{rng.randrange(10**7):07d}"
        if kind == "stockholm":
            return f"8{rng.randint(1, 9)}{rng.randrange(10**7):07d}"
        if kind == "gothenburg":
            return f"31{rng.randint(1, 9)}{rng.randrange(10**5):05d}"
        if kind == "norway":
            return f"{rng.choice('49')}{rng.randrange(10**7):07d}"
        if kind == "denmark":
            return f"{rng.choice('2345')}{rng.randrange(10**7):07d}"
        if kind == "finland":
            return f"{rng.choice(('40', '50'))}{rng.randrange(10**7):07d}"
        raise ValueError(f"unknown number kind {kind!r}")

    def next_of(self, key: str, items: tuple[Any, ...] | list[Any]) -> Any:
        """Pick items in turn under `key`, so every item is used before any repeats."""
        index = self._round_robin[key]
        self._round_robin[key] += 1
        return items[index % len(items)]

    def random_customer_number(self) -> str:
        """Draw a new caller's number in a mix of spellings, mostly E.164 mobiles."""
        kind = self.rng.choices(("mobile", "stockholm", "gothenburg", "norway"), weights=(85, 8, 5, 2))[0]
        number = self.new_number(kind)
        styles = NUMBER_STYLES[kind]
        weights = [6 if style == "e164" else 1 for style in styles]
        return number.render(self.rng.choices(styles, weights=weights)[0])

    def new_caller(self, kind: str = "mobile") -> _Speaker:
        """Make up a caller unknown to HubSpot. `call` fills in the agent's name."""
        name_kind = kind if kind in FOREIGN_KINDS else "mobile"
        customer = f"{self.rng.choice(_FIRST_NAMES[name_kind])} {self.rng.choice(_LAST_NAMES[name_kind])}"
        return _Speaker(agent="", customer=customer, company=self.rng.choice(PROSPECT_COMPANIES))

    # -- seed data ------------------------------------------------------------------------------------------------

    def _make_contacts(self) -> list[DemoContact]:
        contacts = []
        for index, (company_index, plan) in enumerate(_CONTACT_PLAN):
            company = COMPANIES[company_index]
            first, last = self._draw_name(company.number_kind)
            phone = mobilephone = None
            if plan == "phone":
                phone = (self.new_number("mobile"), self.next_of("stored_mobile", _STORED_MOBILE_STYLES))
            elif plan == "mobilephone":
                mobilephone = (self.new_number("mobile"), self.next_of("stored_mobile", _STORED_MOBILE_STYLES))
            elif plan == "landline_and_mobile":
                assert company.landline_kind is not None, f"{company.name} has no landline kind"
                phone = (
                    self.new_number(company.landline_kind),
                    self.next_of("stored_landline", ("national", "e164_spaced")),
                )
                mobilephone = (self.new_number("mobile"), self.next_of("stored_mobile", _STORED_MOBILE_STYLES))
            else:
                phone = (self.new_number(company.number_kind), self.next_of("stored_foreign", ("spaced", "prefix_00")))
            contacts.append(
                DemoContact(
                    id=str(FIRST_CONTACT_ID + index),
                    first_name=first,
                    last_name=last,
                    email=_email(first, last, company.domain),
                    company=company,
                    phone=phone,
                    mobilephone=mobilephone,
                )
            )
        return contacts

    def _draw_name(self, kind: str) -> tuple[str, str]:
        name_kind = kind if kind in FOREIGN_KINDS else "mobile"
        return self.rng.choice(_FIRST_NAMES[name_kind]), self.rng.choice(_LAST_NAMES[name_kind])

    def _make_ambiguous_pair(self) -> tuple[DemoContact, DemoContact]:
        """Add two contacts with one number spelled two ways, as when someone creates a duplicate by hand."""
        company = COMPANIES[0]
        number = self.new_number("mobile")
        next_id = FIRST_CONTACT_ID + len(self.contacts)
        original = DemoContact(
            str(next_id),
            "Ingrid",
            "Sjöberg",
            _email("Ingrid", "Sjöberg", company.domain),
            company,
            phone=(number, "e164_dash"),
            mobilephone=None,
        )
        duplicate = DemoContact(
            str(next_id + 1),
            "Ingrid",
            "Sjöberg",
            None,
            company,
            phone=None,
            mobilephone=(number, "dash_compact"),
        )
        self.contacts.extend((original, duplicate))
        return original, duplicate

    def _make_deals(self) -> list[tuple[str, DemoContact, dict[str, str]]]:
        deal_contacts = (self.contacts[0], self.contacts[2], self.contacts[6])
        titles = ("växelbyte 40 användare", "mobilavtal 2026", "kundtjänstkö och inspelning")
        deals = []
        for index, (contact, title) in enumerate(zip(deal_contacts, titles, strict=True)):
            properties = {
                "dealname": f"{contact.company.name}: {title}",
                "pipeline": "default",
                "dealstage": self.rng.choice(("qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin")),
                "amount": str(self.rng.randrange(40, 400) * 1000),
            }
            deals.append((str(FIRST_DEAL_ID + index), contact, properties))
        return deals

    def _make_blocklist(self) -> list[tuple[DemoNumber | None, str, str, str | None]]:
        """Make the blocklist as (number, stored spelling, spelling sessions use, reason) rows.

        Each number is stored in a different spelling from the one its calls arrive in, so only a lookup by
        E.164 finds it. The last row is not a valid number, so callsync ignores it with a warning.
        """
        return [
            (self.new_number("mobile"), "dash_spaces", "e164", "Kollegas privata mobil"),
            (
                self.new_number("stockholm"),
                "e164_spaced",
                "national",
                "Vill inte bli kontaktad (spärrad efter klagomål)",
            ),
            (self.new_number("norway"), "prefix_00", "spaced", "Leverantör, inte kund"),
            (self.new_number("mobile"), "bare_country", "digits", "Privat nummer"),
            (None, "070-12 34", "", "Ofullständigt nummer, inlagt för hand"),
        ]

    def standin_seed(self) -> dict[str, Any]:
        owners = []
        for index, agent in enumerate(AGENTS):
            if agent.owner_id is None:
                continue
            owners.append(
                {
                    "id": agent.owner_id,
                    "email": agent.agent_user_id.lower(),
                    "firstName": agent.first_name,
                    "lastName": agent.last_name,
                    "userId": FIRST_OWNER_USER_ID + index,
                }
            )
        companies = []
        for company in COMPANIES:
            phone = self.company_phones[company.id]
            style = "national" if phone.kind in ("stockholm", "gothenburg") else NUMBER_STYLES[phone.kind][0]
            companies.append(
                {
                    "id": company.id,
                    "properties": {
                        "name": company.name,
                        "domain": company.domain,
                        "city": company.city,
                        "country": company.country,
                        "phone": phone.render(style),
                    },
                }
            )
        deals = [
            {
                "id": deal_id,
                "properties": properties,
                "associations": [
                    {
                        "to": {"id": contact.id},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                    }
                ],
            }
            for deal_id, contact, properties in self.deals
        ]
        return {
            "owners": owners,
            "companies": companies,
            "contacts": [contact.to_seed() for contact in self.contacts],
            "deals": deals,
        }

    def blocked_rows(self) -> list[dict[str, Any]]:
        rows = []
        for number, stored_style, _, reason in self.blocked:
            rows.append(
                {
                    "id": self.new_uuid(),
                    "phone_number": number.render(stored_style) if number else stored_style,
                    "reason": reason,
                    "created_at": _midnight_days_ago(self.now, 30),
                }
            )
        return rows

    # -- sessions -------------------------------------------------------------------------------------------------

    def call(
        self,
        direction: str | None,
        from_number: str | None,
        to_number: str | None,
        *,
        agent: DemoAgent | None = None,
        answered: bool = True,
        timing: str = "finished",
        transcription_status: str | None = "completed",
        transcript: str | None = "default",
        recording: str = "https",
        speaker: _Speaker | None = None,
        contact_id: str | None = None,
        deal_id: str | None = None,
    ) -> dict[str, Any]:
        """Create one session and its transcription rows.

        `timing` is "finished" (ended at least FINISHED_CALL_MIN_AGE ago), "recent" (ended RECENT_CALL_AGE
        ago) or "ongoing" (no ended_at). `transcript` names the kind of transcript to add ("default" picks
        Swedish or English, and None adds none). `recording` is "https", "http" or "missing". Unanswered calls
        get no transcript and no recording, whatever the arguments.
        """
        rng = self.rng
        session_id = self.new_uuid()
        call_id = self.new_call_id()
        agent = agent or rng.choices(AGENTS, weights=_AGENT_WEIGHTS)[0]
        started_at, answered_at, ended_at = self._call_times(timing, answered)

        if not answered:
            transcription_status, transcript, recording = None, None, "none"
        recording_url, recording_status = self._recording(recording, call_id, timing)

        session = {
            "id": session_id,
            "telavox_call_id": call_id,
            "telavox_org_id": TELAVOX_ORG_ID,
            "hubspot_portal_id": None,
            "direction": direction,
            "from_number": from_number,
            "to_number": to_number,
            "agent_user_id": agent.agent_user_id,
            "hubspot_contact_id": contact_id,
            "hubspot_deal_id": deal_id,
            "started_at": started_at,
            "answered_at": answered_at,
            "ended_at": ended_at,
            "recording_url": recording_url,
            "recording_status": recording_status,
            "transcription_status": transcription_status,
            "transcript": None,
            "summary": None,
            "sentiment": None,
            "insights_json": None,
            "hubspot_engagement_id": None,
            "last_error": None,
            "created_at": started_at,
        }
        if transcript is not None:
            speaker = speaker or self.new_caller()
            speaker = _Speaker(agent.first_name, speaker.customer, speaker.company)
            self._add_transcript(session, transcript, speaker)
        self.sessions.append(session)
        return session

    def _call_times(self, timing: str, answered: bool) -> tuple[datetime, datetime | None, datetime | None]:
        rng = self.rng
        ringing = timedelta(seconds=rng.randint(4, 28) if answered else rng.randint(15, 45))
        talk = timedelta(seconds=rng.randint(25, 840)) if answered else timedelta(0)
        days_ago = rng.randrange(HISTORY_DAYS)
        seconds_into_day = rng.randint(8 * 3600, 17 * 3600)

        if timing == "ongoing":
            started_at = self.now - ringing - talk
            return started_at, started_at + ringing if answered else None, None
        if timing == "recent":
            ended_at = self.now - RECENT_CALL_AGE
            started_at = ended_at - talk - ringing
            return started_at, started_at + ringing if answered else None, ended_at

        # Office hours in Stockholm, moved back a day at a time until the call is old enough.
        local_day = self.now.astimezone(OFFICE_TIMEZONE).date() - timedelta(days=days_ago)
        local_start = datetime.combine(local_day, time(), OFFICE_TIMEZONE) + timedelta(seconds=seconds_into_day)
        started_at = local_start.astimezone(UTC)
        while started_at + ringing + talk > self.now - FINISHED_CALL_MIN_AGE:
            started_at -= timedelta(days=1)
        answered_at = started_at + ringing if answered else None
        return started_at, answered_at, started_at + ringing + talk

    def _recording(self, kind: str, call_id: str, timing: str) -> tuple[str | None, str | None]:
        """Return the recording URL and status: "missing" is a recording that failed or is not ready yet."""
        if kind == "none":
            return None, None
        if kind == "missing":
            return None, self.rng.choice(("failed", "pending"))
        if timing == "ongoing":
            return None, None
        scheme = "https" if kind == "https" else "http"
        return f"{scheme}://recordings.norrkust.example/telavox/{call_id}.mp3", "available"

    # -- transcripts ----------------------------------------------------------------------------------------------

    def _add_transcript(self, session: dict[str, Any], kind: str, speaker: _Speaker) -> None:
        ended_at = session["ended_at"] or session["started_at"]
        if kind == "default":
            kind = "swedish" if self.rng.random() < 0.75 else "english"

        if kind in ("swedish", "english"):
            script = self._pick_script("sv" if kind == "swedish" else "en")
            turns, summary = self._fill(script, speaker)
            self._transcription_row(session, turns, summary, script.language, ended_at, self._labels(turns))
        elif kind == "incomplete_turns":
            turns, summary = self._fill(self._pick_script("sv"), speaker)
            self._transcription_row(session, turns, summary, "sv", ended_at, _damage_labels(self._labels(turns)))
        elif kind == "wrapped_turns":
            turns, summary = self._fill(self._pick_script("en"), speaker)
            self._transcription_row(session, turns, summary, "en", ended_at, _wrap_labels(self._labels(turns)))
        elif kind == "unreadable_labels":
            turns, summary = self._fill(self._pick_script("sv"), speaker)
            labels = " ".join(f"SPEAKER_0{0 if role == 'agent' else 1}: {text}" for role, text in turns)
            self._transcription_row(session, turns, summary, "sv", ended_at, labels)
        elif kind == "no_labels":
            turns, summary = self._fill(self._pick_script("sv"), speaker)
            self._transcription_row(session, turns, None, "sv", ended_at, None)
        elif kind == "long":
            turns, summary = _long_call(speaker, self.rng)
            self._transcription_row(session, turns, summary, "sv", ended_at, self._labels(turns))
        elif kind == "html":
            turns, summary = _html_call(speaker)
            self._transcription_row(session, turns, summary, "sv", ended_at, self._labels(turns))
        elif kind == "superseded":
            turns, summary = self._fill(self._pick_script("sv"), speaker)
            draft = [(role, f"{SUPERSEDED_DRAFT_MARK} {text.lower().rstrip('.!?')}") for role, text in turns]
            self._transcription_row(session, draft, None, "en", ended_at, self._labels(draft), delay_minutes=2)
            self._transcription_row(session, turns, summary, "sv", ended_at, self._labels(turns), delay_minutes=35)
        elif kind == "legacy":
            turns, summary = self._fill(self._pick_script("sv"), speaker)
            session["transcript"] = "\n".join(f"{_legacy_speaker(role)}: {text}" for role, text in turns)
            session["summary"] = summary
            session["sentiment"] = self.rng.choice(("positive", "neutral", "negative"))
            session["insights_json"] = {"key_points": [summary], "next_steps": [turns[-2][1]]}
        else:
            raise ValueError(f"unknown transcript kind {kind!r}")

    def _pick_script(self, language: str) -> _Script:
        return self.rng.choice([script for script in _SCRIPTS if script.language == language])

    def _fill(self, script: _Script, speaker: _Speaker) -> tuple[list[tuple[str, str]], str]:
        values = {
            "agent": speaker.agent,
            "customer": speaker.customer,
            "company": speaker.company,
            "order": f"{self.rng.randrange(100_000, 999_999)}",
            "amount": f"{self.rng.randrange(2_000, 90_000):,}".replace(",", " "),
            "city": self.rng.choice(_CITIES),
        }
        turns = [(role, text.format(**values)) for role, text in script.turns]
        return turns, script.summary.format(**values)

    def _labels(self, turns: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Build `speaker_labels` from turns, timed in seconds from the start of the recording."""
        clock = round(self.rng.uniform(0.2, 1.5), 1)
        labels = []
        for role, text in turns:
            duration = round(1.0 + len(text) / 15, 1)
            labels.append({"speaker": role, "text": text, "start": clock, "end": round(clock + duration, 1)})
            clock = round(clock + duration + self.rng.uniform(0.2, 1.2), 1)
        return labels

    def _transcription_row(
        self,
        session: dict[str, Any],
        turns: list[tuple[str, str]],
        summary: str | None,
        language: str,
        ended_at: datetime,
        speaker_labels: Any,
        delay_minutes: int | None = None,
    ) -> None:
        delay = delay_minutes if delay_minutes is not None else self.rng.randint(2, 20)
        self.transcriptions.append(
            {
                "id": self.new_uuid(),
                "call_session_id": session["id"],
                "full_text": "\n".join(text for _, text in turns),
                "speaker_labels": speaker_labels,
                "summary": summary,
                "language": language,
                "created_at": ended_at + timedelta(minutes=delay),
            }
        )

    # -- calls by side --------------------------------------------------------------------------------------------

    def company_side(self, kind: str | None = None) -> str:
        """Pick the company's own number: an extension (70 % when `kind` is None) or a switchboard number."""
        if kind is None:
            kind = "extension" if self.rng.random() < 0.7 else "company_number"
        if kind == "extension":
            return self.rng.choice(COMPANY_EXTENSIONS)
        return self.rng.choice(COMPANY_NUMBERS)

    def inbound(
        self, customer: str | None, direction: str = "INBOUND", company: str | None = None, **options: Any
    ) -> dict[str, Any]:
        return self.call(direction, customer, self.company_side(company), **options)

    def outbound(
        self, customer: str | None, direction: str = "OUTBOUND", company: str | None = None, **options: Any
    ) -> dict[str, Any]:
        return self.call(direction, self.company_side(company), customer, **options)

    def either_way(self, customer: str, **options: Any) -> dict[str, Any]:
        """Create a call in or out, inbound two times in three."""
        if self.rng.random() < 2 / 3:
            return self.inbound(customer, **options)
        return self.outbound(customer, **options)

    def contact_call(self, contact: DemoContact, number: tuple[DemoNumber, str], **options: Any) -> dict[str, Any]:
        """Create a call with a seeded contact, its number spelled differently from HubSpot's copy."""
        stored_number, stored_style = number
        style = self.rng.choice([style for style in NUMBER_STYLES[stored_number.kind] if style != stored_style])
        speaker = _Speaker("", contact.full_name, contact.company.name)
        requested_transcript = options.pop("transcript", "default")
        transcript = "english" if stored_number.kind in FOREIGN_KINDS else requested_transcript
        session = self.either_way(stored_number.render(style), speaker=speaker, transcript=transcript, **options)
        self.expected_contact_ids[session["id"]] = contact.id
        return session

    # -- category builders ----------------------------------------------------------------------------------------

    def mobile_in_style(self, style: str) -> dict[str, Any]:
        return self.either_way(self.new_number("mobile").render(style))

    def number_of_kind(self, kind: str, style: str | None = None) -> dict[str, Any]:
        number = self.new_number(kind)
        style = style or self.rng.choice(NUMBER_STYLES[kind])
        transcript = "english" if kind in FOREIGN_KINDS else "default"
        return self.either_way(number.render(style), transcript=transcript, speaker=self.new_caller(kind))

    def everyday_inbound(self, company: str) -> dict[str, Any]:
        return self.inbound(self.random_customer_number(), company=company)

    def everyday_outbound(self, company: str) -> dict[str, Any]:
        return self.outbound(self.random_customer_number(), company=company)

    def spelled_direction(self, direction: str) -> dict[str, Any]:
        if direction.lower() in ("inbound", "incoming"):
            return self.inbound(self.random_customer_number(), direction=direction)
        return self.outbound(self.random_customer_number(), direction=direction)

    def direction_inferred(self, customer_side: str) -> dict[str, Any]:
        customer = self.random_customer_number()
        extension = self.company_side("extension")
        if customer_side == "from":
            return self.call(None, customer, extension)
        return self.call(None, extension, customer)

    def direction_both_numbers(self) -> dict[str, Any]:
        return self.call(None, self.random_customer_number(), self.company_side("company_number"))

    def direction_no_number(self) -> dict[str, Any]:
        return self.call(None, "anonymous", self.company_side("extension"))

    def direction_internal(self) -> dict[str, Any]:
        first, second = self.rng.sample(COMPANY_EXTENSIONS, 2)
        return self.call("INTERNAL", first, second, transcription_status=None, transcript=None)

    def hidden(self, category: str) -> dict[str, Any]:
        return self.inbound(HIDDEN_NUMBER_VALUES[category])

    def junk_inbound(self, raw: str) -> dict[str, Any]:
        return self.inbound(raw)

    def junk_outbound(self, raw: str) -> dict[str, Any]:
        return self.outbound(raw)

    def blocked_call(self, outbound: bool = False, prefilled_contact: bool = False) -> dict[str, Any]:
        usable = [row for row in self.blocked if row[0] is not None]
        number, _, session_style, _ = self.next_of("blocked", usable)
        customer = number.render(session_style)
        contact_id = self.rng.choice(self.contacts).id if prefilled_contact else None
        if outbound:
            return self.outbound(customer, contact_id=contact_id)
        return self.inbound(customer, contact_id=contact_id)

    def existing_contact(self, property_name: str) -> dict[str, Any]:
        ambiguous_ids = {contact.id for contact in self.ambiguous_pair}
        candidates = [
            contact
            for contact in self.contacts
            if contact.id not in ambiguous_ids
            and getattr(contact, property_name) is not None
            and getattr(contact, property_name)[0].kind not in FOREIGN_KINDS
        ]
        contact = self.next_of(f"contact_{property_name}", candidates)
        return self.contact_call(contact, getattr(contact, property_name))

    def existing_foreign_contact(self) -> dict[str, Any]:
        candidates = [contact for contact in self.contacts if contact.phone and contact.phone[0].kind in FOREIGN_KINDS]
        contact = self.next_of("contact_foreign", candidates)
        assert contact.phone is not None
        return self.contact_call(contact, contact.phone)

    def ambiguous_contact(self) -> dict[str, Any]:
        original, duplicate = self.ambiguous_pair
        # The session spells the number as neither contact stores it. The lowest id wins.
        number = original.phone
        assert number is not None
        speaker = _Speaker("", original.full_name, original.company.name)
        style = self.next_of("ambiguous_style", ("e164", "spaces", "bracket_trunk"))
        session = self.either_way(number[0].render(style), speaker=speaker)
        self.expected_contact_ids[session["id"]] = min(
            (original.id, duplicate.id), key=lambda value: (len(value), value)
        )
        return session

    def prefilled_contact(self, with_deal: bool = False, customer: str | None = None) -> dict[str, Any]:
        """Create a session whose contact the application already set, from a number HubSpot does not have."""
        deal_id = None
        if with_deal:
            deal_id, contact, _ = self.next_of("deal", self.deals)
        else:
            contact = self.next_of("prefilled", self.contacts)
        speaker = _Speaker("", contact.full_name, contact.company.name)
        if customer is None:
            customer = self.new_number("mobile").render("e164")
        session = self.inbound(customer, contact_id=contact.id, deal_id=deal_id, speaker=speaker)
        self.expected_contact_ids[session["id"]] = contact.id
        return session

    def deal_without_contact(self) -> dict[str, Any]:
        """Create a session with only a deal id, whose contact callsync finds by phone."""
        deal_id, contact, _ = self.next_of("deal_only", self.deals)
        assert contact.phone is not None
        session = self.contact_call(contact, contact.phone)
        session["hubspot_deal_id"] = deal_id
        return session

    def unanswered(self, outbound: bool) -> dict[str, Any]:
        customer = self.random_customer_number()
        if outbound:
            return self.outbound(customer, answered=False)
        return self.inbound(customer, answered=False)

    def with_transcript(self, kind: str) -> dict[str, Any]:
        return self.either_way(self.random_customer_number(), transcript=kind)

    def transcription_state(self, status: str, timing: str = "finished") -> dict[str, Any]:
        recording = "https" if status in ("pending", "in_progress") else "missing"
        return self.inbound(
            self.random_customer_number(),
            transcription_status=status,
            transcript=None,
            timing=timing,
            recording=recording,
        )

    def ongoing(self) -> dict[str, Any]:
        return self.either_way(
            self.random_customer_number(), timing="ongoing", transcription_status=None, transcript=None
        )

    def recording_kind(self, kind: str) -> dict[str, Any]:
        return self.either_way(self.random_customer_number(), recording=kind)

    def agent_kind(self, kind: str) -> dict[str, Any]:
        agent = self.next_of(f"agent_{kind}", [agent for agent in AGENTS if agent.kind == kind])
        return self.either_way(self.random_customer_number(), agent=agent)


# ---------------------------------------------------------------------------------------------------------------
# Transcript shapes
# ---------------------------------------------------------------------------------------------------------------


def _damage_labels(labels: list[dict[str, Any]]) -> list[Any]:
    """Break utterances the ways transcription services do: missing keys, null or empty text, a null entry."""
    damaged: list[Any] = [dict(label) for label in labels]
    del damaged[1]["speaker"]
    damaged[2]["text"] = None
    del damaged[3]["start"]
    del damaged[3]["end"]
    damaged[4]["text"] = ""
    damaged.insert(5, None)
    return damaged


def _wrap_labels(labels: list[dict[str, Any]]) -> dict[str, Any]:
    """Another service's shape: segments under a key, `role`/`content` keys and times in milliseconds."""
    return {
        "engine": "demo-asr-2",
        "segments": [
            {
                "role": "user" if label["speaker"] == "customer" else label["speaker"],
                "content": label["text"],
                "start_ms": int(label["start"] * 1000),
                "end_ms": int(label["end"] * 1000),
            }
            for label in labels
        ],
    }


def _legacy_speaker(role: str) -> str:
    return "Agent" if role == "agent" else "Kund"


def _long_call(speaker: _Speaker, rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    """A framework order read out line by line, long enough that the CALL body must be cut."""
    turns = [
        ("agent", f"Norrkust, {speaker.agent}. Ska vi gå igenom ramavtalsbeställningen rad för rad?"),
        ("customer", f"Ja, {speaker.customer} här från {speaker.company}. Jag har listan framför mig."),
    ]
    sites = ("lagret i Borås", "kontoret i Sundsvall", "butiken i Kalmar", "verkstaden i Gävle")
    line = 0
    while sum(len(text) + 1 for _, text in turns) <= LONG_TRANSCRIPT_MIN_CHARS + 2_000:
        line += 1
        article = f"NK-{rng.randrange(1000, 9999)}"
        quantity = rng.randrange(2, 60)
        week = rng.randrange(2, 52)
        site = rng.choice(sites)
        turns.append(
            ("customer", f"Rad {line}: artikel {article}, {quantity} stycken, leverans vecka {week} till {site}.")
        )
        turns.append(("agent", f"Noterat, rad {line}: {quantity} stycken {article} till {site}, vecka {week}."))
    turns.append(("customer", "Det var allt. Tack för att du tog dig tid!"))
    summary = f"Genomgång av ramavtalsbeställningen från {speaker.company}: {line} rader bekräftade med artikel, antal och leveransvecka."
    return turns, summary


def _html_call(speaker: _Speaker) -> tuple[list[tuple[str, str]], str]:
    """A call whose words contain markup and ampersands, which the CALL body must show as text."""
    turns = [
        ("agent", f"Norrkust support, {speaker.agent}."),
        (
            "customer",
            f"Hej, {speaker.customer} på Berg & Söner. Vårt kontaktformulär visar bara texten "
            "<script>alert('hej')</script> när man skickar det.",
        ),
        ("agent", "Då tolkas något som kod. Står det <b>fetstil</b> eller liknande i fälten också?"),
        ("customer", 'Ja, och priset visas som "< 500 kr & > 300 kr" i stället för ett belopp.'),
        ("agent", "Jag skickar ärendet till våra utvecklare och återkommer i morgon."),
    ]
    summary = (
        'Kontaktformuläret hos Berg & Söner visar <script>-taggar och "&" som text. Ärendet skickat till utvecklarna.'
    )
    return turns, summary


# ---------------------------------------------------------------------------------------------------------------
# Category table
# ---------------------------------------------------------------------------------------------------------------


CATEGORIES: tuple[DemoCategory, ...] = (
    # Every spelling of a Swedish number Telavox delivers, and foreign numbers that keep their country.
    DemoCategory("format_dash_spaces", _synced(), lambda b: b.mobile_in_style("dash_spaces"), 3, 4),
    DemoCategory("format_spaces", _synced(), lambda b: b.mobile_in_style("spaces"), 2, 1),
    DemoCategory("format_digits", _synced(), lambda b: b.mobile_in_style("digits"), 3, 4),
    DemoCategory("format_e164", _synced(), lambda b: b.mobile_in_style("e164"), 3, 10),
    DemoCategory("format_e164_spaced", _synced(), lambda b: b.mobile_in_style("e164_spaced"), 2, 1),
    DemoCategory("format_bracket_trunk", _synced(), lambda b: b.mobile_in_style("bracket_trunk"), 2),
    DemoCategory("format_prefix_00", _synced(), lambda b: b.mobile_in_style("prefix_00"), 2, 1),
    DemoCategory("format_bare_country_code", _synced(), lambda b: b.mobile_in_style("bare_country"), 2),
    DemoCategory("format_plus46_trunk_zero", _synced(), lambda b: b.mobile_in_style("plus46_trunk"), 2),
    DemoCategory("landline_stockholm", _synced(), lambda b: b.number_of_kind("stockholm", "national"), 2, 2),
    DemoCategory("landline_gothenburg", _synced(), lambda b: b.number_of_kind("gothenburg", "national"), 2, 1),
    DemoCategory("foreign_norway", _synced(), lambda b: b.number_of_kind("norway"), 2),
    DemoCategory("foreign_denmark", _synced(), lambda b: b.number_of_kind("denmark"), 2),
    DemoCategory("foreign_finland", _synced(), lambda b: b.number_of_kind("finland"), 2),
    # The company's side: an agent's extension or a switchboard number.
    DemoCategory("inbound_to_extension", _synced(), lambda b: b.everyday_inbound("extension"), 2, 30),
    DemoCategory("inbound_to_company_number", _synced(), lambda b: b.everyday_inbound("company_number"), 2, 10),
    DemoCategory("outbound_from_extension", _synced(), lambda b: b.everyday_outbound("extension"), 2, 15),
    DemoCategory("outbound_from_company_number", _synced(), lambda b: b.everyday_outbound("company_number"), 2, 5),
    # Direction spellings, and a missing direction read from the numbers or not at all.
    DemoCategory("direction_inbound_lower_case", _synced(), lambda b: b.spelled_direction("inbound"), 2),
    DemoCategory("direction_incoming", _synced(), lambda b: b.spelled_direction("INCOMING"), 2, 1),
    DemoCategory("direction_outgoing", _synced(), lambda b: b.spelled_direction("OUTGOING"), 2, 1),
    DemoCategory("direction_outbound_lower_case", _synced(), lambda b: b.spelled_direction("outbound"), 2),
    DemoCategory("direction_null_inferred_inbound", _synced(), lambda b: b.direction_inferred("from"), 2),
    DemoCategory("direction_null_inferred_outbound", _synced(), lambda b: b.direction_inferred("to"), 2),
    DemoCategory("direction_null_both_numbers", _skipped("unknown_direction"), lambda b: b.direction_both_numbers(), 2),
    DemoCategory("direction_null_no_number", _skipped("unknown_direction"), lambda b: b.direction_no_number()),
    DemoCategory("direction_internal_call", _skipped("unknown_direction"), lambda b: b.direction_internal()),
    # Withheld and unusable numbers.
    DemoCategory("hidden_empty", _skipped("hidden_number"), lambda b: b.hidden("hidden_empty")),
    DemoCategory("hidden_null", _skipped("hidden_number"), lambda b: b.hidden("hidden_null")),
    DemoCategory("hidden_anonymous", _skipped("hidden_number"), lambda b: b.hidden("hidden_anonymous"), 1, 2),
    DemoCategory("hidden_unknown", _skipped("hidden_number"), lambda b: b.hidden("hidden_unknown")),
    DemoCategory("hidden_private", _skipped("hidden_number"), lambda b: b.hidden("hidden_private")),
    DemoCategory("hidden_bare_country_code", _skipped("hidden_number"), lambda b: b.hidden("hidden_bare_country_code")),
    DemoCategory("invalid_too_short", _skipped("invalid_number"), lambda b: b.junk_inbound("070-123")),
    DemoCategory("invalid_too_long", _skipped("invalid_number"), lambda b: b.junk_inbound("070-123 45 67 89")),
    DemoCategory("invalid_text", _skipped("invalid_number"), lambda b: b.junk_inbound("ej tillgängligt")),
    DemoCategory(
        "invalid_sip_address", _skipped("invalid_number"), lambda b: b.junk_inbound("sip:201@pbx.norrkust.example")
    ),
    DemoCategory("invalid_outbound", _skipped("invalid_number"), lambda b: b.junk_outbound("+46 70 12")),
    # The blocklist, stored in other spellings than the calls use.
    DemoCategory("blocked_inbound", _skipped("blocked_number"), lambda b: b.blocked_call(), 4),
    DemoCategory("blocked_outbound", _skipped("blocked_number"), lambda b: b.blocked_call(outbound=True)),
    DemoCategory(
        "blocked_with_prefilled_contact", _skipped("blocked_number"), lambda b: b.blocked_call(prefilled_contact=True)
    ),
    # HubSpot contacts: found by phone, ambiguous, new, or prefilled by the application.
    DemoCategory("existing_contact_phone", _synced(), lambda b: b.existing_contact("phone"), 4, 10),
    DemoCategory("existing_contact_mobilephone", _synced(), lambda b: b.existing_contact("mobilephone"), 2, 3),
    DemoCategory("existing_contact_foreign", _synced(), lambda b: b.existing_foreign_contact(), 2),
    DemoCategory("ambiguous_contact", _synced(), lambda b: b.ambiguous_contact(), 2),
    DemoCategory("new_contact", _synced(), lambda b: b.mobile_in_style("e164"), 3, 3),
    DemoCategory("prefilled_contact", _synced(), lambda b: b.prefilled_contact(), 3),
    DemoCategory("prefilled_contact_and_deal", _synced(), lambda b: b.prefilled_contact(with_deal=True), 2),
    DemoCategory("deal_without_contact", _synced(), lambda b: b.deal_without_contact()),
    # The application linked the call to its contact, so a withheld number does not stop the sync.
    DemoCategory("prefilled_contact_hidden_number", _synced(), lambda b: b.prefilled_contact(customer="anonymous")),
    # Calls picked up or not, and every state and shape of transcript.
    DemoCategory("unanswered_inbound", _synced(), lambda b: b.unanswered(outbound=False), 3, 8),
    DemoCategory("unanswered_outbound", _synced(), lambda b: b.unanswered(outbound=True), 2, 4),
    DemoCategory("transcript_swedish", _synced(), lambda b: b.with_transcript("swedish"), 3, 2),
    DemoCategory("transcript_english", _synced(), lambda b: b.with_transcript("english"), 3, 1),
    DemoCategory("transcript_incomplete_turns", _synced(), lambda b: b.with_transcript("incomplete_turns")),
    DemoCategory("transcript_wrapped_turns", _synced(), lambda b: b.with_transcript("wrapped_turns")),
    DemoCategory("transcript_unreadable_labels", _synced(), lambda b: b.with_transcript("unreadable_labels")),
    DemoCategory("transcript_no_labels", _synced(), lambda b: b.with_transcript("no_labels")),
    DemoCategory("transcript_long", _synced(), lambda b: b.with_transcript("long")),
    DemoCategory("transcript_html", _synced(), lambda b: b.with_transcript("html")),
    DemoCategory("transcript_superseded", _synced(), lambda b: b.with_transcript("superseded"), 2),
    DemoCategory("legacy_transcript_columns", _synced(), lambda b: b.with_transcript("legacy"), 2),
    DemoCategory("transcription_failed", _synced(), lambda b: b.transcription_state("failed"), 2, 1),
    DemoCategory("transcription_pending_stale", _synced(), lambda b: b.transcription_state("pending"), 2),
    DemoCategory("transcription_in_progress_stale", _synced(), lambda b: b.transcription_state("in_progress")),
    DemoCategory(
        "transcription_pending_recent", _TRANSCRIPT_AWAITED, lambda b: b.transcription_state("pending", "recent"), 2
    ),
    DemoCategory(
        "transcription_in_progress_recent",
        _TRANSCRIPT_AWAITED,
        lambda b: b.transcription_state("in_progress", "recent"),
    ),
    DemoCategory("call_ongoing", _NOT_ENDED, lambda b: b.ongoing(), 3),
    # Recordings and agents.
    DemoCategory("recording_http", _synced(), lambda b: b.recording_kind("http"), 2),
    DemoCategory("recording_missing", _synced(), lambda b: b.recording_kind("missing"), 2, 2),
    DemoCategory("agent_without_owner", _synced(), lambda b: b.agent_kind("no_owner"), 2),
    DemoCategory("agent_not_email", _synced(), lambda b: b.agent_kind("not_email"), 2),
)

CATEGORY_NAMES = tuple(category.name for category in CATEGORIES)
MINIMUM_COUNT = sum(category.minimum for category in CATEGORIES)


# ---------------------------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------------------------


def build_demo_dataset(
    count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED, now: datetime | None = None
) -> DemoDataset:
    """Generate `count` call sessions with their transcripts, the blocklist and the stand-in's seed.

    Every category gets its minimum number of sessions and the rest are everyday calls. The same `seed` and
    `now` give the same dataset. Sessions of the "recent" categories end 10 minutes before `now`, so their
    not_eligible outcome holds only until the transcript wait has passed since `now`.
    """
    if count < MINIMUM_COUNT:
        raise ValueError(
            f"count {count} is too small: the demo needs at least {MINIMUM_COUNT} sessions to cover every category"
        )
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"now {now.isoformat()} has no time zone; pass an aware datetime such as datetime.now(UTC)")
    now = now.replace(microsecond=0)

    rng = random.Random(seed)
    builder = _Builder(rng, now)
    blocked_numbers = builder.blocked_rows()

    plan = [category for category in CATEGORIES for _ in range(category.minimum)]
    fillers = [category for category in CATEGORIES if category.filler_weight]
    plan += rng.choices(fillers, weights=[category.filler_weight for category in fillers], k=count - len(plan))
    rng.shuffle(plan)

    expected: dict[str, Outcome] = {}
    categories: dict[str, str] = {}
    for category in plan:
        session = category.build(builder)
        expected[session["id"]] = category.outcome
        categories[session["id"]] = category.name

    expected_contact_ids = {
        session_id: contact_id
        for session_id, contact_id in builder.expected_contact_ids.items()
        if expected[session_id][0] == SYNCED
    }
    return DemoDataset(
        sessions=sorted(builder.sessions, key=lambda session: (session["started_at"], session["id"])),
        transcriptions=builder.transcriptions,
        blocked_numbers=blocked_numbers,
        standin_seed=builder.standin_seed(),
        expected=expected,
        categories=categories,
        expected_contact_ids=expected_contact_ids,
        generated_at=now,
    )


SESSION_COLUMNS = (
    "id",
    "telavox_call_id",
    "telavox_org_id",
    "hubspot_portal_id",
    "direction",
    "from_number",
    "to_number",
    "agent_user_id",
    "hubspot_contact_id",
    "hubspot_deal_id",
    "started_at",
    "answered_at",
    "ended_at",
    "recording_url",
    "recording_status",
    "transcription_status",
    "transcript",
    "summary",
    "sentiment",
    "insights_json",
    "hubspot_engagement_id",
    "last_error",
    "created_at",
)
TRANSCRIPTION_COLUMNS = ("id", "call_session_id", "full_text", "speaker_labels", "summary", "language", "created_at")
BLOCKED_NUMBER_COLUMNS = ("id", "phone_number", "reason", "created_at")
_JSONB_COLUMNS = frozenset({"insights_json", "speaker_labels"})


def insert_demo_dataset(conn: psycopg.Connection[Any], schema: str, dataset: DemoDataset) -> None:
    """Insert the blocklist, sessions and transcriptions into the tables in `schema`, in one transaction.

    Rows whose id or unique key (telavox_call_id, phone_number) already exists are left untouched, so a
    rerun adds nothing and keeps the sync state of sessions already processed.
    """
    validate_schema_name(schema)
    with conn.transaction():
        _insert_rows(conn, schema, "blocked_numbers", BLOCKED_NUMBER_COLUMNS, dataset.blocked_numbers)
        _insert_rows(conn, schema, "telavox_call_sessions", SESSION_COLUMNS, dataset.sessions)
        _insert_rows(conn, schema, "transcriptions", TRANSCRIPTION_COLUMNS, dataset.transcriptions)


def _insert_rows(
    conn: psycopg.Connection[Any], schema: str, table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    # ON CONFLICT without a target covers every unique constraint: the primary key and telavox_call_id
    # or phone_number.
    query = sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING").format(
        table=sql.Identifier(schema, table),
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        values=sql.SQL(", ").join(sql.Placeholder() for _ in columns),
    )
    with conn.cursor() as cursor:
        cursor.executemany(query, [[_db_value(column, row[column]) for column in columns] for row in rows])


def _db_value(column: str, value: Any) -> Any:
    if column in _JSONB_COLUMNS and value is not None:
        return Jsonb(value)
    return value


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------


def _e164(raw: str) -> str:
    number = normalize_phone_number(raw)
    if not isinstance(number, PhoneNumber):
        raise ValueError(f"demo company number {raw!r} is not a valid number")
    return number.e164


def _email(first: str, last: str, domain: str) -> str:
    return f"{first}.{last}".lower().translate(_EMAIL_LETTERS) + f"@{domain}"


def _midnight_days_ago(now: datetime, days: int) -> datetime:
    local_day = now.astimezone(OFFICE_TIMEZONE).date() - timedelta(days=days)
    return datetime.combine(local_day, time(), OFFICE_TIMEZONE).astimezone(UTC)
