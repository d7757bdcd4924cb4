"""In-memory store of the HubSpot stand-in: CRM objects, associations, owners, limits and request counts.

This module does no HTTP. Its methods take and return JSON-shaped dicts in HubSpot's wire format and raise
StandinError for every failure, which app.py turns into HubSpot's error body. Every public method takes the
state's lock, so tests may call the state directly while the server thread serves requests.

Shapes, limits and error bodies follow HubSpot's documented CRM v3/v4 API (2025-2026). Where HubSpot documents no
behaviour, a comment names the choice the stand-in made.
NOTE: the inverse association type ids (such as 193 for contact to call), the v3 association names and the object
type ids (0-1 and so on) have not been checked against HubSpot's published tables or a live account.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import phonenumbers

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# ---------------------------------------------------------------------------------------------------------------
# Limits and defaults
# ---------------------------------------------------------------------------------------------------------------

BATCH_MAX_INPUTS = 100
LIST_DEFAULT_LIMIT = 10
LIST_MAX_LIMIT = 100
OWNERS_DEFAULT_LIMIT = 100
OWNERS_MAX_LIMIT = 500
ASSOCIATIONS_BATCH_CREATE_MAX_INPUTS = 2000
ASSOCIATIONS_BATCH_READ_MAX_INPUTS = 1000
ASSOCIATIONS_PAGE_DEFAULT_LIMIT = 500

SEARCH_MAX_FILTER_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 6
SEARCH_MAX_FILTERS_TOTAL = 18
SEARCH_DEFAULT_LIMIT = 10
SEARCH_MAX_LIMIT = 200
SEARCH_MAX_BODY_CHARS = 3000
SEARCH_MAX_RESULTS = 10_000
SEARCH_MAX_SORTS = 1

# HubSpot documents 65,536 characters for text properties and note bodies.
TEXT_PROPERTY_MAX_CHARS = 65_536

RATE_LIMIT_INTERVAL_SECONDS = 10.0
SEARCH_RATE_INTERVAL_SECONDS = 1.0
DEFAULT_RATE_LIMIT_PER_INTERVAL = 100  # Free and Starter accounts
DEFAULT_SEARCH_PER_SECOND = 5
DEFAULT_DAILY_LIMIT = 250_000  # Free and Starter accounts
DEFAULT_PHONE_REGION = "SE"

# Keys of a fault in the admin API's JSON, and the longest delay a fault may ask for. A longer delay is more likely
# milliseconds given as seconds than a wanted hang.
FAULT_KEYS = frozenset(
    {
        "status",
        "count",
        "path_contains",
        "path",
        "method",
        "category",
        "message",
        "policy_name",
        "retry_after_seconds",
        "apply_request",
        "delay_seconds",
        "drop_connection",
        "required_scopes",
    }
)
FAULT_MAX_DELAY_SECONDS = 600.0

# Ids are shared by every object type and owner, so an id of the wrong type never finds an object by accident.
FIRST_OBJECT_ID = 1001

# ---------------------------------------------------------------------------------------------------------------
# Error categories, validation codes and rate-limit policies
# ---------------------------------------------------------------------------------------------------------------

CATEGORY_VALIDATION_ERROR = "VALIDATION_ERROR"
CATEGORY_INVALID_AUTHENTICATION = "INVALID_AUTHENTICATION"
CATEGORY_OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"
CATEGORY_CONFLICT = "CONFLICT"
CATEGORY_RATE_LIMITS = "RATE_LIMITS"
CATEGORY_MISSING_SCOPES = "MISSING_SCOPES"

# Categories for faults injected through the admin API when the fault names none.
DEFAULT_CATEGORY_BY_STATUS: dict[int, str] = {
    400: CATEGORY_VALIDATION_ERROR,
    401: CATEGORY_INVALID_AUTHENTICATION,
    403: CATEGORY_MISSING_SCOPES,
    404: CATEGORY_OBJECT_NOT_FOUND,
    409: CATEGORY_CONFLICT,
    423: "LOCKED",
    429: CATEGORY_RATE_LIMITS,
    477: "MIGRATION_IN_PROGRESS",
}
DEFAULT_SERVER_ERROR_CATEGORY = "INTERNAL_ERROR"

# PROPERTY_DOESNT_EXIST and INVALID_OPTION are codes HubSpot sends.
# NOTE: HubSpot documents no code for the other property checks, so those codes are the stand-in's own.
CODE_PROPERTY_DOESNT_EXIST = "PROPERTY_DOESNT_EXIST"
CODE_INVALID_OPTION = "INVALID_OPTION"
CODE_READ_ONLY_VALUE = "READ_ONLY_VALUE"
CODE_INVALID_EMAIL = "INVALID_EMAIL"
CODE_INVALID_NUMBER = "INVALID_NUMBER"
CODE_INVALID_DATE = "INVALID_DATE"
CODE_INVALID_URL = "INVALID_URL"
CODE_INVALID_STRING_LENGTH = "INVALID_STRING_LENGTH"
CODE_INVALID_VALUE_TYPE = "INVALID_VALUE_TYPE"
CODE_MISSING_REQUIRED_PROPERTY = "MISSING_REQUIRED_PROPERTY"
CODE_INVALID_ASSOCIATION = "INVALID_ASSOCIATION"

POLICY_TEN_SECONDLY_ROLLING = "TEN_SECONDLY_ROLLING"
POLICY_SECONDLY = "SECONDLY"
POLICY_DAILY = "DAILY"
RATE_LIMIT_MESSAGES: dict[str, str] = {
    POLICY_TEN_SECONDLY_ROLLING: "You have reached your ten_secondly_rolling limit.",
    POLICY_SECONDLY: "You have reached your secondly limit.",
    POLICY_DAILY: "You have reached your daily limit.",
}

AUTHENTICATION_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

# HubSpot's 403 for a token without a required scope. The message, the errors entry and the links field follow a
# body that HubSpot sent in 2022 (https://github.com/HubSpot/hubspot-api-nodejs/issues/268). Newer responses name
# granular scopes under requiredGranularScopes, where that body had requiredScopes.
SCOPES_DOCUMENTATION_URL = "https://developers.hubspot.com/scopes"
MISSING_SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. "
    f"Read more about required scopes here: {SCOPES_DOCUMENTATION_URL}."
)
MISSING_SCOPES_DETAIL = "One or more of the following scopes are required."

OWNERS_READ_SCOPE = "crm.objects.owners.read"

# ---------------------------------------------------------------------------------------------------------------
# Object types and their properties
# ---------------------------------------------------------------------------------------------------------------

ValueType = Literal["string", "email", "number", "datetime", "enumeration", "owner", "https_url"]


@dataclass(frozen=True)
class ObjectTypeSchema:
    """Fixed facts about one CRM object type."""

    name: str  # the plural name used in URL paths
    type_id: str  # HubSpot's object type id, accepted in paths in place of the name
    singular: str
    created_property: str
    modified_property: str
    # Properties returned when a read names none. The id and both timestamps are always returned.
    default_properties: tuple[str, ...]
    required_properties: tuple[str, ...] = ()


OBJECT_TYPES: dict[str, ObjectTypeSchema] = {
    schema.name: schema
    for schema in (
        ObjectTypeSchema(
            "contacts",
            "0-1",
            "contact",
            "createdate",
            "lastmodifieddate",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
        ),
        ObjectTypeSchema(
            "companies",
            "0-2",
            "company",
            "createdate",
            "hs_lastmodifieddate",
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
        ),
        ObjectTypeSchema(
            "deals",
            "0-3",
            "deal",
            "createdate",
            "hs_lastmodifieddate",
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
        ),
        ObjectTypeSchema(
            "calls",
            "0-48",
            "call",
            "hs_createdate",
            "hs_lastmodifieddate",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            required_properties=("hs_timestamp",),
        ),
        ObjectTypeSchema(
            "notes",
            "0-46",
            "note",
            "hs_createdate",
            "hs_lastmodifieddate",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            required_properties=("hs_timestamp",),
        ),
        ObjectTypeSchema(
            "tasks",
            "0-27",
            "task",
            "hs_createdate",
            "hs_lastmodifieddate",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            required_properties=("hs_timestamp",),
        ),
    )
}

# A contact needs at least one of these properties.
CONTACT_IDENTITY_PROPERTIES = ("email", "firstname", "lastname")

CALCULATED_PHONE_PROPERTY = "hs_searchable_calculated_phone_number"
CALCULATED_MOBILE_PROPERTY = "hs_searchable_calculated_mobile_number"
# Source property of each calculated phone property.
CALCULATED_PHONE_SOURCES: dict[str, str] = {
    CALCULATED_PHONE_PROPERTY: "phone",
    CALCULATED_MOBILE_PROPERTY: "mobilephone",
}

CALL_DIRECTIONS = ("INBOUND", "OUTBOUND")
CALL_STATUSES = (
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "MISSED",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
)
CALL_SOURCES = ("INTEGRATIONS_PLATFORM",)
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
TASK_STATUSES = ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")
TASK_PRIORITIES = ("NONE", "LOW", "MEDIUM", "HIGH")
TASK_TYPES = ("CALL", "EMAIL", "TODO", "LINKED_IN")


@dataclass(frozen=True)
class PropertyDefinition:
    """One property of a CRM object type and the rule its values must follow."""

    name: str
    value_type: ValueType = "string"
    options: tuple[str, ...] = ()  # allowed values of an enumeration
    read_only: bool = False


def _definitions(*definitions: PropertyDefinition) -> dict[str, PropertyDefinition]:
    return {definition.name: definition for definition in definitions}


def _string_definitions(*names: str) -> list[PropertyDefinition]:
    return [PropertyDefinition(name) for name in names]


_OBJECT_ID = PropertyDefinition("hs_object_id", "number", read_only=True)
_OWNER = PropertyDefinition("hubspot_owner_id", "owner")
_CREATEDATE = PropertyDefinition("createdate", "datetime")
_HS_CREATEDATE = PropertyDefinition("hs_createdate", "datetime")
_HS_LASTMODIFIEDDATE = PropertyDefinition("hs_lastmodifieddate", "datetime", read_only=True)
_HS_TIMESTAMP = PropertyDefinition("hs_timestamp", "datetime")

STANDARD_PROPERTIES: dict[str, dict[str, PropertyDefinition]] = {
    "contacts": _definitions(
        PropertyDefinition("email", "email"),
        *_string_definitions(
            "firstname",
            "lastname",
            "phone",
            "mobilephone",
            "company",
            "jobtitle",
            "website",
            "city",
            "country",
        ),
        PropertyDefinition("lifecyclestage", "enumeration", LIFECYCLE_STAGES),
        _OWNER,
        _OBJECT_ID,
        _CREATEDATE,
        PropertyDefinition("lastmodifieddate", "datetime", read_only=True),
        PropertyDefinition(CALCULATED_PHONE_PROPERTY, read_only=True),
        PropertyDefinition(CALCULATED_MOBILE_PROPERTY, read_only=True),
    ),
    "companies": _definitions(
        *_string_definitions("name", "domain", "phone", "website", "city", "country"),
        _OWNER,
        _OBJECT_ID,
        _CREATEDATE,
        _HS_LASTMODIFIEDDATE,
    ),
    "deals": _definitions(
        *_string_definitions("dealname", "pipeline", "dealstage"),
        PropertyDefinition("amount", "number"),
        PropertyDefinition("closedate", "datetime"),
        _OWNER,
        _OBJECT_ID,
        _CREATEDATE,
        _HS_LASTMODIFIEDDATE,
    ),
    "calls": _definitions(
        _HS_TIMESTAMP,
        *_string_definitions(
            "hs_call_title",
            "hs_call_body",
            "hs_call_disposition",
            "hs_call_from_number",
            "hs_call_to_number",
            "hs_call_external_id",
        ),
        PropertyDefinition("hs_call_direction", "enumeration", CALL_DIRECTIONS),
        PropertyDefinition("hs_call_duration", "number"),
        PropertyDefinition("hs_call_status", "enumeration", CALL_STATUSES),
        PropertyDefinition("hs_call_recording_url", "https_url"),
        PropertyDefinition("hs_call_source", "enumeration", CALL_SOURCES),
        _OWNER,
        _OBJECT_ID,
        _HS_CREATEDATE,
        _HS_LASTMODIFIEDDATE,
    ),
    "notes": _definitions(
        PropertyDefinition("hs_note_body"),
        _HS_TIMESTAMP,
        _OWNER,
        _OBJECT_ID,
        _HS_CREATEDATE,
        _HS_LASTMODIFIEDDATE,
    ),
    "tasks": _definitions(
        *_string_definitions("hs_task_subject", "hs_task_body"),
        PropertyDefinition("hs_task_status", "enumeration", TASK_STATUSES),
        PropertyDefinition("hs_task_priority", "enumeration", TASK_PRIORITIES),
        PropertyDefinition("hs_task_type", "enumeration", TASK_TYPES),
        _HS_TIMESTAMP,
        _OWNER,
        _OBJECT_ID,
        _HS_CREATEDATE,
        _HS_LASTMODIFIEDDATE,
    ),
}

# ---------------------------------------------------------------------------------------------------------------
# Association types
# ---------------------------------------------------------------------------------------------------------------

ASSOCIATION_CATEGORY = "HUBSPOT_DEFINED"


@dataclass(frozen=True)
class AssociationType:
    """One direction of a HubSpot-defined association type."""

    type_id: int
    from_type: str
    to_type: str
    name: str  # the v3 name, e.g. "call_to_contact"
    inverse_id: int  # the same association seen from the other object
    label: str | None = None  # the v4 label, None for unlabeled types
    is_default: bool = True  # the unlabeled type that PUT .../associations/default/... creates


def _association_pair(
    from_type: str,
    to_type: str,
    type_id: int,
    inverse_id: int,
    *,
    label: str | None = None,
    inverse_label: str | None = None,
    name_suffix: str = "",
) -> tuple[AssociationType, AssociationType]:
    """Build both directions of an association type. A labeled pair is never the default one."""
    forward_name = f"{OBJECT_TYPES[from_type].singular}_to_{OBJECT_TYPES[to_type].singular}{name_suffix}"
    inverse_name = f"{OBJECT_TYPES[to_type].singular}_to_{OBJECT_TYPES[from_type].singular}{name_suffix}"
    is_default = label is None
    return (
        AssociationType(type_id, from_type, to_type, forward_name, inverse_id, label, is_default),
        AssociationType(inverse_id, to_type, from_type, inverse_name, type_id, inverse_label, is_default),
    )


ASSOCIATION_TYPES: dict[int, AssociationType] = {
    association_type.type_id: association_type
    for association_type in itertools.chain(
        # Contact to company: 1 marks the primary company, and every associated company also carries 279.
        _association_pair("contacts", "companies", 1, 2, label="Primary", inverse_label="Contact with Primary Company"),
        # A primary pair owns the plain v3 names, so the unlabeled pair's names end in "_unlabeled".
        _association_pair("contacts", "companies", 279, 280, name_suffix="_unlabeled"),
        _association_pair("deals", "companies", 5, 6, label="Primary", inverse_label="Deal with Primary Company"),
        _association_pair("deals", "companies", 341, 342, name_suffix="_unlabeled"),
        _association_pair("deals", "contacts", 3, 4),
        _association_pair("calls", "contacts", 194, 193),
        _association_pair("calls", "companies", 182, 181),
        _association_pair("calls", "deals", 206, 205),
        _association_pair("notes", "contacts", 202, 201),
        _association_pair("notes", "companies", 190, 189),
        _association_pair("notes", "deals", 214, 213),
        _association_pair("tasks", "contacts", 204, 203),
        _association_pair("tasks", "companies", 192, 191),
        _association_pair("tasks", "deals", 216, 215),
    )
}

# A primary association always comes with the unlabeled one of the same direction.
PRIMARY_TO_UNLABELED: dict[int, int] = {1: 279, 2: 280, 5: 341, 6: 342}
# Association types that an object may have to at most one other object (one primary company).
SINGLE_TARGET_ASSOCIATION_TYPES = frozenset({1, 5})


def default_association_type(from_type: str, to_type: str) -> AssociationType | None:
    """Return the unlabeled association type between two object types, or None if they cannot be associated."""
    for association_type in ASSOCIATION_TYPES.values():
        if (
            association_type.from_type == from_type
            and association_type.to_type == to_type
            and association_type.is_default
        ):
            return association_type
    return None


# ---------------------------------------------------------------------------------------------------------------
# Scopes
# ---------------------------------------------------------------------------------------------------------------

ScopeAccess = Literal["read", "write"]

# Scope name stem of each object type: the read scope is "<stem>.read", the write scope "<stem>.write".
# NOTE: calls, notes and tasks use the contact scopes, as README.md's list of private-app scopes assumes. This has
# not been checked against HubSpot's current scope table, which may also offer scopes per engagement type.
OBJECT_SCOPE_STEMS: dict[str, str] = {
    "contacts": "crm.objects.contacts",
    "companies": "crm.objects.companies",
    "deals": "crm.objects.deals",
    "calls": "crm.objects.contacts",
    "notes": "crm.objects.contacts",
    "tasks": "crm.objects.contacts",
}


def object_scope(object_type: str, access: ScopeAccess) -> str:
    """Return the scope that reading or writing objects of a type (plural name) needs."""
    return f"{OBJECT_SCOPE_STEMS[object_type]}.{access}"


def object_route_scopes(object_type: str, access: ScopeAccess) -> tuple[str, ...]:
    """Return the scopes that a request on objects of a type needs.

    An unknown type needs none here, so that the handler rejects it with HubSpot's 400 for an unknown type.
    """
    try:
        schema = StandinState.resolve_object_type(object_type)
    except StandinError:
        return ()
    return (object_scope(schema.name, access),)


def association_route_scopes(from_type: str, to_type: str, access: ScopeAccess) -> tuple[str, ...]:
    """Return the scopes that reading or writing associations between two object types needs.

    Reading needs the read scopes of both types. Writing needs the write scope of the source type and the read
    scope of the target type, so that a CALL can be associated with a deal under crm.objects.deals.read.
    NOTE: HubSpot does not document the scopes of each association route, so this rule is the stand-in's own.
    """
    source = object_route_scopes(from_type, access)
    target = object_route_scopes(to_type, "read")
    if not source or not target:
        return ()
    return tuple(dict.fromkeys(source + target))


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------


class StandinError(Exception):
    """A failure that the stand-in reports as HubSpot's error body with the given HTTP status."""

    def __init__(
        self,
        status: int,
        category: str | None,
        message: str,
        *,
        errors: list[JsonDict] | None = None,
        context: dict[str, list[str]] | None = None,
        sub_category: str | None = None,
        extra: JsonDict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors
        self.context = context
        self.sub_category = sub_category
        self.extra = extra or {}
        self.headers = headers or {}

    def to_body(self, correlation_id: str) -> JsonDict:
        """Build HubSpot's error body: status, message, correlationId, category and the optional fields."""
        body: JsonDict = {"status": "error", "message": self.message, "correlationId": correlation_id}
        if self.category is not None:
            body["category"] = self.category
        if self.sub_category is not None:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = self.context
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def to_batch_error(self, context: dict[str, list[str]]) -> JsonDict:
        """Build the entry for this error in a batch response's `errors` list."""
        entry: JsonDict = {"status": "error", "category": self.category, "message": self.message}
        if self.sub_category is not None:
            entry["subCategory"] = self.sub_category
        entry["context"] = context
        if self.errors:
            entry["errors"] = self.errors
        return entry


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def validation_error(message: str, *, errors: list[JsonDict] | None = None) -> StandinError:
    return StandinError(400, CATEGORY_VALIDATION_ERROR, message, errors=errors)


def rate_limit_error(policy_name: str, headers: dict[str, str] | None = None) -> StandinError:
    """Build HubSpot's 429 body, which names a policy and carries errorType in place of a category."""
    return StandinError(
        429,
        None,
        RATE_LIMIT_MESSAGES.get(policy_name, "You have reached your rate limit."),
        extra={"errorType": "RATE_LIMIT", "policyName": policy_name},
        headers=headers,
    )


def authentication_error() -> StandinError:
    return StandinError(401, CATEGORY_INVALID_AUTHENTICATION, AUTHENTICATION_MESSAGE)


def missing_scopes_error(scope_groups: Sequence[Sequence[str]], headers: dict[str, str] | None = None) -> StandinError:
    """Build HubSpot's 403 MISSING_SCOPES body with one `errors` entry per group of scopes.

    Each entry requires one or more of its scopes, so a group lists alternatives and every group must be
    satisfied.
    """
    errors = [
        {"message": MISSING_SCOPES_DETAIL, "context": {"requiredGranularScopes": list(group)}} for group in scope_groups
    ]
    return StandinError(
        403,
        CATEGORY_MISSING_SCOPES,
        MISSING_SCOPES_MESSAGE,
        errors=errors,
        extra={"links": {"scopes": SCOPES_DOCUMENTATION_URL}},
        headers=headers,
    )


@dataclass(frozen=True)
class PropertyIssue:
    """One invalid property value of a create or update request."""

    name: str
    code: str
    message: str


def property_values_error(issues: Sequence[PropertyIssue]) -> StandinError:
    """Build HubSpot's 400 for invalid property values, with one `errors` entry per issue."""
    details = [
        {
            "isValid": False,
            "message": issue.message,
            "error": issue.code,
            "name": issue.name,
            "localizedErrorMessage": issue.message,
        }
        for issue in issues
    ]
    errors = [
        {"message": issue.message, "code": issue.code, "context": {"propertyName": [issue.name]}} for issue in issues
    ]
    message = "Property values were not valid: " + json.dumps(details, separators=(",", ":"))
    return validation_error(message, errors=errors)


# ---------------------------------------------------------------------------------------------------------------
# Values: timestamps, phone numbers, property values
# ---------------------------------------------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """Format a time as HubSpot does: UTC, milliseconds, a trailing Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime_value(value: str) -> datetime | None:
    """Parse epoch milliseconds or an ISO-8601 date or date-time, or return None if the value is neither.

    A value without a time zone is taken as UTC.
    """
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def searchable_phone_number(raw: str | None, default_region: str) -> str | None:
    """Return the national significant number of a phone number, as HubSpot's calculated phone properties hold.

    That is the number without country code and without trunk prefix: "+46 70-123 45 67" and "070-123 45 67"
    (region SE) both give "701234567". A value that phonenumbers cannot parse gives its digits with leading
    zeros stripped. Returns None for an empty value.
    NOTE: HubSpot does not document its normalisation, so odd formats may be calculated differently there.
    """
    if raw is None or not raw.strip():
        return None
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None:
        national_number = phonenumbers.national_significant_number(parsed)
        if national_number:
            return national_number
    digits = re.sub(r"\D", "", raw).lstrip("0")
    return digits or None


_EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _wire_string(value: Any) -> str | None:
    """Convert a JSON property value to HubSpot's string form. None and "" become None, which clears the property."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value if value != "" else None
    raise TypeError(type(value).__name__)


# ---------------------------------------------------------------------------------------------------------------
# Stored records
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CrmObject:
    """One stored CRM object, with every property value as a string."""

    object_type: str
    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    seeded: bool = False  # stored by seed(), so search finds it without the search lag


@dataclass
class Owner:
    """One HubSpot owner (a user who can own records)."""

    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    created_at: datetime
    teams: list[JsonDict] = field(default_factory=list)

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "userIdIncludingInactive": self.user_id,
            "type": "PERSON",
            "teams": self.teams,
            "archived": False,
            "createdAt": format_timestamp(self.created_at),
            "updatedAt": format_timestamp(self.created_at),
        }


@dataclass
class Fault:
    """A queued failure or slowdown for the next `remaining` matching /crm requests.

    A fault first waits `delay_seconds`: after carrying out the request if `apply_request` is set, before it
    otherwise. The wait ends early when the client closes the connection. Then the fault closes the connection
    without a response (`drop_connection`) or replaces the response with HTTP `status`. A fault with neither
    carries out the request after the wait, even if the client has given up, and sends the real response.
    Faults never affect /_standin routes.
    """

    status: int | None
    remaining: int
    path_contains: str = ""
    path: str | None = None  # if set, the whole path must be equal, so "/crm/v3/objects/calls" skips .../search
    method: str | None = None
    category: str | None = None
    message: str | None = None
    policy_name: str | None = None  # only for status 429
    retry_after_seconds: int | None = None
    # If True the request is carried out before the fault replaces its response, like a 502 after a write.
    apply_request: bool = False
    delay_seconds: float = 0.0
    drop_connection: bool = False
    # Scopes that a 403 names in requiredGranularScopes, making it HubSpot's MISSING_SCOPES error.
    required_scopes: tuple[str, ...] = ()

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is not None and self.path != path:
            return False
        return self.path_contains in path

    def to_error(self) -> StandinError:
        """Build the error response of a fault with a status. Raises ValueError for a fault without one."""
        if self.status is None:
            raise ValueError("This fault has no status, so it has no error response.")
        headers: dict[str, str] = {}
        if self.retry_after_seconds is not None:
            headers["Retry-After"] = str(self.retry_after_seconds)
        if self.status == 429:
            return rate_limit_error(self.policy_name or POLICY_TEN_SECONDLY_ROLLING, headers)
        if self.required_scopes:
            return missing_scopes_error([self.required_scopes], headers)
        category = self.category or DEFAULT_CATEGORY_BY_STATUS.get(self.status, DEFAULT_SERVER_ERROR_CATEGORY)
        message = self.message or f"The HubSpot stand-in returned an injected HTTP {self.status} error."
        return StandinError(self.status, category, message, headers=headers)

    def to_json(self) -> JsonDict:
        return {
            "status": self.status,
            "remaining": self.remaining,
            "path_contains": self.path_contains,
            "path": self.path,
            "method": self.method,
            "category": self.category,
            "message": self.message,
            "policy_name": self.policy_name,
            "retry_after_seconds": self.retry_after_seconds,
            "apply_request": self.apply_request,
            "delay_seconds": self.delay_seconds,
            "drop_connection": self.drop_connection,
            "required_scopes": list(self.required_scopes),
        }


@dataclass(frozen=True)
class RateLimitDecision:
    """Outcome of a rate-limit check: the headers to send, and the 429 to return if the request is over a limit."""

    headers: dict[str, str]
    error: StandinError | None


# ---------------------------------------------------------------------------------------------------------------
# Search requests and filter evaluation
# ---------------------------------------------------------------------------------------------------------------

SEARCH_OPERATORS_WITH_VALUE = frozenset({"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"})
SEARCH_OPERATORS_WITH_VALUES = frozenset({"IN", "NOT_IN"})
SEARCH_OPERATORS_WITHOUT_VALUE = frozenset({"HAS_PROPERTY", "NOT_HAS_PROPERTY"})
SEARCH_OPERATORS = (
    SEARCH_OPERATORS_WITH_VALUE | SEARCH_OPERATORS_WITH_VALUES | SEARCH_OPERATORS_WITHOUT_VALUE | {"BETWEEN"}
)
# Filters on "associations.<object>" select objects associated with the given ids.
ASSOCIATION_FILTER_PREFIX = "associations."
ASSOCIATION_FILTER_OPERATORS = frozenset({"EQ", "IN"})


@dataclass(frozen=True)
class SearchFilter:
    property_name: str
    operator: str
    value: str | None = None
    high_value: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchRequest:
    filter_groups: tuple[tuple[SearchFilter, ...], ...]
    properties: tuple[str, ...] | None
    sort_property: str | None
    sort_descending: bool
    limit: int
    after: int
    query: str | None


def comparable_value(definition: PropertyDefinition, raw: str) -> float | str:
    """Return the key that filters and sorts compare for a value of this property.

    Numbers and owner ids compare as numbers, date-times as epoch milliseconds, everything else as lower-case
    text, because HubSpot's EQ on text is case-insensitive. Raises ValueError for a value of the wrong type.
    """
    if definition.value_type in ("number", "owner"):
        return float(raw)
    if definition.value_type == "datetime":
        moment = parse_datetime_value(raw)
        if moment is None:
            raise ValueError(f"{raw!r} is not a date-time")
        return moment.timestamp() * 1000
    return raw.lower()


def _tokens(text: str) -> list[str]:
    return [token for token in re.split(r"[\s,;]+", text.lower()) if token]


def property_filter_matches(stored: str | None, search_filter: SearchFilter, definition: PropertyDefinition) -> bool:
    """Return whether a stored property value passes one search filter.

    IN and NOT_IN on text properties compare the lower-cased stored value with the filter values as given,
    because HubSpot only matches lower-case values there.
    NOTE: whether HubSpot's NEQ and NOT_IN match objects without a value is not documented. Here they do.
    CONTAINS_TOKEN splits on whitespace, commas and semicolons and accepts * wildcards, which is a
    simplification of HubSpot's tokenizer.
    """
    operator = search_filter.operator
    if operator == "HAS_PROPERTY":
        return stored is not None
    if operator == "NOT_HAS_PROPERTY":
        return stored is None

    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = (search_filter.value or "").lower()
        found = stored is not None and any(fnmatch.fnmatchcase(token, pattern) for token in _tokens(stored))
        return found if operator == "CONTAINS_TOKEN" else not found

    if operator in ("IN", "NOT_IN"):
        if stored is None:
            return operator == "NOT_IN"
        if definition.value_type in ("string", "email"):
            found = stored.lower() in search_filter.values
        else:
            key = comparable_value(definition, stored)
            found = any(key == comparable_value(definition, value) for value in search_filter.values)
        return found if operator == "IN" else not found

    if stored is None:
        return operator == "NEQ"
    key = comparable_value(definition, stored)
    target = comparable_value(definition, search_filter.value or "")
    if operator == "EQ":
        return key == target
    if operator == "NEQ":
        return key != target
    if operator == "BETWEEN":
        high = comparable_value(definition, search_filter.high_value or "")
        return _compare(key, target) >= 0 and _compare(key, high) <= 0
    comparison = _compare(key, target)
    return {
        "LT": comparison < 0,
        "LTE": comparison <= 0,
        "GT": comparison > 0,
        "GTE": comparison >= 0,
    }[operator]


def _compare(left: float | str, right: float | str) -> int:
    """Return -1, 0 or 1. comparable_value gives both sides the same type for one property."""
    if isinstance(left, float) and isinstance(right, float):
        return (left > right) - (left < right)
    left_text, right_text = str(left), str(right)
    return (left_text > right_text) - (left_text < right_text)


def _require_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise validation_error(f"Invalid input: {where} must be a JSON object, got {type(value).__name__}.")
    return value


def _require_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise validation_error(f"Invalid input: {where} must be a JSON array, got {type(value).__name__}.")
    return value


def _require_int(value: Any, where: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise validation_error(f"Invalid input: {where} must be an integer, got {value!r}.") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise validation_error(f"Invalid input: {where} must be at least {minimum}{upper}, got {number}.")
    return number


def _require_string_list(value: Any, where: str) -> tuple[str, ...]:
    items = _require_list(value, where)
    if not all(isinstance(item, str | int | float) and not isinstance(item, bool) for item in items):
        raise validation_error(f"Invalid input: {where} must contain only strings.")
    return tuple(str(item) for item in items)


def _parse_filter(raw: Any, where: str) -> SearchFilter:
    raw_filter = _require_mapping(raw, where)
    property_name = raw_filter.get("propertyName")
    operator = raw_filter.get("operator", "EQ")
    if not isinstance(property_name, str) or not property_name:
        raise validation_error(f"Invalid input: {where}.propertyName is missing.")
    if operator not in SEARCH_OPERATORS:
        raise validation_error(
            f"Invalid input: {where}.operator {operator!r} is not one of {sorted(SEARCH_OPERATORS)}."
        )

    value = _wire_string_or_none(raw_filter.get("value"))
    high_value = _wire_string_or_none(raw_filter.get("highValue"))
    values: tuple[str, ...] = ()
    if operator in SEARCH_OPERATORS_WITH_VALUE and value is None:
        raise validation_error(f"Invalid input: operator {operator} in {where} needs a value.")
    if operator == "BETWEEN" and (value is None or high_value is None):
        raise validation_error(f"Invalid input: operator BETWEEN in {where} needs value and highValue.")
    if operator in SEARCH_OPERATORS_WITH_VALUES:
        values = _require_string_list(raw_filter.get("values"), f"{where}.values")
        if not values:
            raise validation_error(f"Invalid input: operator {operator} in {where} needs a non-empty values list.")
    if operator in SEARCH_OPERATORS_WITHOUT_VALUE and (value is not None or raw_filter.get("values")):
        raise validation_error(f"Invalid input: operator {operator} in {where} takes no value.")
    return SearchFilter(property_name, operator, value, high_value, values)


def _wire_string_or_none(value: Any) -> str | None:
    try:
        return _wire_string(value)
    except TypeError:
        raise validation_error(f"Invalid input: filter value {value!r} must be a string or a number.") from None


def parse_search_request(body: Any, body_chars: int) -> SearchRequest:
    """Check a search body against HubSpot's limits and parse it. Raise StandinError (400) if it breaks one."""
    if body_chars > SEARCH_MAX_BODY_CHARS:
        raise validation_error(
            f"Search request body is {body_chars} characters long, but the maximum is {SEARCH_MAX_BODY_CHARS}."
        )
    request = _require_mapping(body, "the request body")

    raw_groups = _require_list(request.get("filterGroups", []), "filterGroups")
    if len(raw_groups) > SEARCH_MAX_FILTER_GROUPS:
        raise validation_error(
            f"Too many filter groups: {len(raw_groups)}, but the maximum is {SEARCH_MAX_FILTER_GROUPS}."
        )
    groups: list[tuple[SearchFilter, ...]] = []
    for group_index, raw_group in enumerate(raw_groups):
        group = _require_mapping(raw_group, f"filterGroups[{group_index}]")
        raw_filters = _require_list(group.get("filters", []), f"filterGroups[{group_index}].filters")
        if len(raw_filters) > SEARCH_MAX_FILTERS_PER_GROUP:
            raise validation_error(
                f"Too many filters in filterGroups[{group_index}]: {len(raw_filters)}, but the maximum is "
                f"{SEARCH_MAX_FILTERS_PER_GROUP}."
            )
        groups.append(
            tuple(
                _parse_filter(raw_filter, f"filterGroups[{group_index}].filters[{filter_index}]")
                for filter_index, raw_filter in enumerate(raw_filters)
            )
        )
    total_filters = sum(len(group) for group in groups)
    if total_filters > SEARCH_MAX_FILTERS_TOTAL:
        raise validation_error(
            f"Too many filters: {total_filters} in all groups, but the maximum is {SEARCH_MAX_FILTERS_TOTAL}."
        )

    raw_properties = request.get("properties")
    properties = None if raw_properties is None else _require_string_list(raw_properties, "properties")

    sort_property, sort_descending = _parse_sorts(request.get("sorts", []))

    limit = _require_int(request.get("limit", SEARCH_DEFAULT_LIMIT), "limit", minimum=0, maximum=SEARCH_MAX_LIMIT)
    after = _require_int(request.get("after", 0) or 0, "after", minimum=0)
    if after >= SEARCH_MAX_RESULTS:
        raise validation_error(
            f"Paging past {SEARCH_MAX_RESULTS} results is not supported: after is {after}. Narrow the filters."
        )

    query = request.get("query")
    if query is not None and not isinstance(query, str):
        raise validation_error("Invalid input: query must be a string.")
    return SearchRequest(tuple(groups), properties, sort_property, sort_descending, limit, after, query or None)


def _parse_sorts(raw_sorts: Any) -> tuple[str | None, bool]:
    sorts = _require_list(raw_sorts, "sorts")
    if len(sorts) > SEARCH_MAX_SORTS:
        raise validation_error(f"Too many sorts: {len(sorts)}, but the maximum is {SEARCH_MAX_SORTS}.")
    if not sorts:
        return None, False
    sort = sorts[0]
    if isinstance(sort, str):
        return sort, False
    sort_rule = _require_mapping(sort, "sorts[0]")
    property_name = sort_rule.get("propertyName")
    direction = sort_rule.get("direction", "ASCENDING")
    if not isinstance(property_name, str) or direction not in ("ASCENDING", "DESCENDING"):
        raise validation_error("Invalid input: sorts[0] needs propertyName and a direction of ASCENDING or DESCENDING.")
    return property_name, direction == "DESCENDING"


# ---------------------------------------------------------------------------------------------------------------
# The state
# ---------------------------------------------------------------------------------------------------------------

AssociationKey = tuple[str, str, str]  # from type, from id, to type


class StandinState:
    """Everything the HubSpot stand-in stores, and the HubSpot API operations on it.

    Args:
        tokens: private app tokens that authenticate /crm requests. At least one is required.
        rate_limit_per_interval: requests per token in any rolling 10 s window, search excluded.
        search_per_second: search requests per token in any rolling 1 s window.
        daily_limit: /crm requests per token, search included, until reset() (there is no midnight reset).
        default_phone_region: ISO 3166 region for phone numbers without a country code.
        clock: source of monotonic seconds for the rate limits. Tests may pass a fake clock.
        search_lag_seconds: how long a new object stays invisible to search. HubSpot's search is
            eventually consistent ("a few moments" after a create), which a lag of 0 hides. Seeded objects are
            searchable at once, because they stand for data that existed before the test.
        token_scopes: the scopes granted to some of the tokens, by token. A token missing here has every scope.
            A request that needs a scope its token lacks gets HubSpot's 403 MISSING_SCOPES.
    """

    def __init__(
        self,
        tokens: Iterable[str],
        *,
        rate_limit_per_interval: int = DEFAULT_RATE_LIMIT_PER_INTERVAL,
        search_per_second: int = DEFAULT_SEARCH_PER_SECOND,
        daily_limit: int = DEFAULT_DAILY_LIMIT,
        default_phone_region: str = DEFAULT_PHONE_REGION,
        clock: Callable[[], float] = time.monotonic,
        search_lag_seconds: float = 0.0,
        token_scopes: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.tokens: tuple[str, ...] = tuple(tokens)
        if not self.tokens or not all(isinstance(token, str) and token for token in self.tokens):
            raise ValueError("StandinState needs at least one non-empty token.")
        self.token_scopes: dict[str, frozenset[str]] = {
            token: frozenset(scopes) for token, scopes in (token_scopes or {}).items()
        }
        if not set(self.token_scopes) <= set(self.tokens):
            # The message names no token, because tokens must never appear in logs or tracebacks.
            raise ValueError("token_scopes names a token that is not in tokens.")
        for name, limit in (
            ("rate_limit_per_interval", rate_limit_per_interval),
            ("search_per_second", search_per_second),
            ("daily_limit", daily_limit),
        ):
            if limit < 1:
                raise ValueError(f"{name} must be at least 1, got {limit}.")
        if default_phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"default_phone_region {default_phone_region!r} is not a region that phonenumbers supports."
            )

        self.rate_limit_per_interval = rate_limit_per_interval
        self.search_per_second = search_per_second
        self.daily_limit = daily_limit
        self.default_phone_region = default_phone_region
        self.search_lag_seconds = search_lag_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._properties: dict[str, dict[str, PropertyDefinition]] = {
            object_type: dict(definitions) for object_type, definitions in STANDARD_PROPERTIES.items()
        }
        self._clear()

    def _clear(self) -> None:
        self._next_id = FIRST_OBJECT_ID
        self._objects: dict[str, dict[str, CrmObject]] = {object_type: {} for object_type in OBJECT_TYPES}
        # (from type, from id, to type) -> to id -> association type ids
        self._associations: dict[AssociationKey, dict[str, set[int]]] = defaultdict(dict)
        self._owners: dict[str, Owner] = {}
        self._faults: list[Fault] = []
        self._general_windows: dict[str, deque[float]] = defaultdict(deque)
        self._search_windows: dict[str, deque[float]] = defaultdict(deque)
        self._daily_counts: dict[str, int] = defaultdict(int)
        self._request_total = 0
        self._requests_by_route: dict[str, int] = defaultdict(int)
        self._requests_by_status: dict[str, int] = defaultdict(int)
        self._rate_limited = 0

    # -- configuration and admin ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Delete all objects, associations, owners, faults, rate-limit windows and request counts.

        Configuration and registered custom properties stay.
        """
        with self._lock:
            self._clear()
        logger.info("HubSpot stand-in state reset")

    def register_property(
        self,
        object_type: str,
        name: str,
        value_type: ValueType = "string",
        options: Sequence[str] = (),
    ) -> None:
        """Register a custom property so that creates, updates and searches accept it."""
        schema = self.resolve_object_type(object_type)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise validation_error(f"Invalid property name {name!r}: use lower-case letters, digits and underscores.")
        if value_type == "enumeration" and not options:
            raise validation_error(f"Enumeration property {name!r} needs at least one option.")
        with self._lock:
            self._properties[schema.name][name] = PropertyDefinition(name, value_type, tuple(options))
        logger.info("registered custom property %s.%s (%s)", schema.name, name, value_type)

    def property_definitions(self, object_type: str) -> dict[str, PropertyDefinition]:
        schema = self.resolve_object_type(object_type)
        with self._lock:
            return dict(self._properties[schema.name])

    def token_label(self, token: str) -> str:
        """Name a configured token for logs by its position, because a log must never contain the token."""
        return f"token #{self.tokens.index(token) + 1}"

    def is_valid_token(self, token: str | None) -> bool:
        return token is not None and token in self.tokens

    def check_scopes(self, token: str, required: Iterable[str]) -> StandinError | None:
        """Return the 403 MISSING_SCOPES for the required scopes that the token lacks, or None if it has them all."""
        granted = self.token_scopes.get(token)
        if granted is None:
            return None
        missing = [scope for scope in dict.fromkeys(required) if scope not in granted]
        if not missing:
            return None
        logger.info("%s lacks scopes %s", self.token_label(token), ", ".join(missing))
        return missing_scopes_error([[scope] for scope in missing])

    def add_fault(self, spec: Mapping[str, Any]) -> Fault:
        """Queue a fault from the admin API's JSON and return it. Raise StandinError (400) for an invalid spec.

        Keys (a fault needs at least one of status, delay_seconds, drop_connection and required_scopes):
            status: HTTP status, 400 to 599, that replaces the response.
            count: how many matching requests the fault applies to (default 1).
            path_contains, path, method: the substring of the path, the whole path and the method that a request
                must have to match. Each is optional.
            category, message: category and message of the error body (defaults depend on the status).
            policy_name: policyName of a 429 body (default TEN_SECONDLY_ROLLING).
            retry_after_seconds: value of the Retry-After header of the error response.
            apply_request: carry out the request first, so that the write happens although the client gets the
                fault (default false).
            delay_seconds: seconds to wait before responding, 0 to 600, or until the client closes the connection.
                With apply_request the request is carried out first and its response is held, so a client with a
                shorter timeout times out after the write.
            drop_connection: close the connection without any HTTP response (default false). It takes no status.
            required_scopes: scope names for a 403 MISSING_SCOPES body; the status may be left out or must be 403.
        """
        unknown = sorted(set(spec) - FAULT_KEYS)
        if unknown:
            raise validation_error(f"Invalid fault: unknown keys {unknown}. Use {sorted(FAULT_KEYS)}.")
        count = _require_int(spec.get("count", 1), "count", minimum=1)
        path_contains = spec.get("path_contains", "")
        method = spec.get("method")
        retry_after = spec.get("retry_after_seconds")
        if not isinstance(path_contains, str):
            raise validation_error("Invalid fault: path_contains must be a string.")
        path = _optional_str(spec, "path")
        if method is not None and not isinstance(method, str):
            raise validation_error("Invalid fault: method must be a string such as POST.")

        required_scopes = _fault_scopes(spec.get("required_scopes"))
        raw_status = spec.get("status", 403 if required_scopes else None)
        status = None if raw_status is None else _require_int(raw_status, "status", minimum=400, maximum=599)
        if required_scopes and status != 403:
            raise validation_error(f"Invalid fault: required_scopes needs status 403, got {status}.")
        drop_connection = _optional_bool(spec, "drop_connection")
        if drop_connection and status is not None:
            raise validation_error(
                "Invalid fault: drop_connection sends no response, so it takes neither status nor required_scopes."
            )
        delay_seconds = _fault_seconds(spec.get("delay_seconds", 0), "delay_seconds")
        if status is None and not drop_connection and delay_seconds == 0:
            raise validation_error(
                "Invalid fault: give a status, a delay_seconds above 0, drop_connection or required_scopes."
            )

        fault = Fault(
            status=status,
            remaining=count,
            path_contains=path_contains,
            path=path,
            method=method,
            category=_optional_str(spec, "category"),
            message=_optional_str(spec, "message"),
            policy_name=_optional_str(spec, "policy_name"),
            retry_after_seconds=None
            if retry_after is None
            else _require_int(retry_after, "retry_after_seconds", minimum=0),
            apply_request=_optional_bool(spec, "apply_request"),
            delay_seconds=delay_seconds,
            drop_connection=drop_connection,
            required_scopes=required_scopes,
        )
        with self._lock:
            self._faults.append(fault)
        effect = "delay"
        if drop_connection:
            effect = "dropped connection"
        elif status is not None:
            effect = f"HTTP {status}"
        logger.info(
            "queued fault: %s (delay %s s) for the next %d requests to %r",
            effect,
            delay_seconds,
            count,
            path if path else path_contains,
        )
        return fault

    def pending_faults(self) -> list[JsonDict]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Return the first queued fault that matches the request and use up one of its count."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def record_request(self, method: str, route: str, status: int | None) -> None:
        """Count one /crm request under its route template and response status.

        A status of None is a connection closed without a response, counted under "dropped".
        """
        with self._lock:
            self._request_total += 1
            self._requests_by_route[f"{method} {route}"] += 1
            self._requests_by_status["dropped" if status is None else str(status)] += 1
            if status == 429:
                self._rate_limited += 1

    def request_counts(self) -> JsonDict:
        """Return counts of /crm requests: total, by method and route template, by status (or "dropped"), and 429s."""
        with self._lock:
            return {
                "total": self._request_total,
                "by_route": dict(self._requests_by_route),
                "by_status": dict(self._requests_by_status),
                "rate_limited": self._rate_limited,
            }

    # -- rate limits ----------------------------------------------------------------------------------------------

    def check_rate_limit(self, token: str, *, search: bool) -> RateLimitDecision:
        """Count one request against the token's limits and return the headers, or the 429, to send.

        General requests share a rolling 10 s window and carry HubSpot's X-HubSpot-RateLimit-* headers.
        Search requests have their own 1 s window and no headers. Both count towards the daily limit.
        A rejected request does not use up a slot.
        """
        with self._lock:
            now = self._clock()
            daily_used = self._daily_counts[token]
            if search:
                window = self._search_windows[token]
                interval, limit = SEARCH_RATE_INTERVAL_SECONDS, self.search_per_second
            else:
                window = self._general_windows[token]
                interval, limit = RATE_LIMIT_INTERVAL_SECONDS, self.rate_limit_per_interval
            while window and window[0] <= now - interval:
                window.popleft()

            if daily_used >= self.daily_limit:
                policy: str | None = POLICY_DAILY
            elif len(window) >= limit:
                policy = POLICY_SECONDLY if search else POLICY_TEN_SECONDLY_ROLLING
            else:
                policy = None
                window.append(now)
                self._daily_counts[token] = daily_used = daily_used + 1

            headers: dict[str, str] = {}
            if not search:
                headers = {
                    "X-HubSpot-RateLimit-Max": str(limit),
                    "X-HubSpot-RateLimit-Remaining": str(max(0, limit - len(window))),
                    "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(RATE_LIMIT_INTERVAL_SECONDS * 1000)),
                    "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                    "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - daily_used)),
                }
        if policy is None:
            return RateLimitDecision(headers, None)
        logger.info("rate limit %s reached for %s", policy, self.token_label(token))
        return RateLimitDecision(headers, rate_limit_error(policy, headers))

    # -- object types, ids and timestamps -------------------------------------------------------------------------

    @staticmethod
    def resolve_object_type(name: str) -> ObjectTypeSchema:
        """Find an object type by plural name, singular name or type id, as HubSpot's paths accept all three."""
        lowered = name.lower()
        for schema in OBJECT_TYPES.values():
            if lowered in (schema.name, schema.singular, schema.type_id):
                return schema
        raise validation_error(f"Unable to infer object type from: {name}")

    def _allocate_id(self, requested: Any = None) -> str:
        if requested is None:
            object_id = str(self._next_id)
            self._next_id += 1
            return object_id
        object_id = str(requested)
        if not object_id.isdigit():
            raise validation_error(f"Invalid id {requested!r}: ids are numeric strings.")
        if self._id_in_use(object_id):
            raise StandinError(409, CATEGORY_CONFLICT, f"Id {object_id} is already in use.")
        self._next_id = max(self._next_id, int(object_id) + 1)
        return object_id

    def _id_in_use(self, object_id: str) -> bool:
        return object_id in self._owners or any(object_id in objects for objects in self._objects.values())

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    # -- property validation --------------------------------------------------------------------------------------

    def _normalize_properties(
        self,
        schema: ObjectTypeSchema,
        raw_properties: Any,
        *,
        creating: bool,
    ) -> dict[str, str | None]:
        """Validate the properties of a create or update and return their string values (None clears one)."""
        properties = _require_mapping(raw_properties, "properties")
        definitions = self._properties[schema.name]
        issues: list[PropertyIssue] = []
        normalized: dict[str, str | None] = {}

        for name, raw_value in properties.items():
            definition = definitions.get(name)
            if definition is None:
                issues.append(PropertyIssue(name, CODE_PROPERTY_DOESNT_EXIST, f'Property "{name}" does not exist'))
                continue
            if definition.read_only:
                issues.append(
                    PropertyIssue(
                        name, CODE_READ_ONLY_VALUE, f'"{name}" is a read only property, so its value cannot be set.'
                    )
                )
                continue
            try:
                value = _wire_string(raw_value)
            except TypeError:
                issues.append(
                    PropertyIssue(
                        name,
                        CODE_INVALID_VALUE_TYPE,
                        f"{name} must be a string, number or boolean, got {type(raw_value).__name__}",
                    )
                )
                continue
            if value is not None:
                issue = self._check_value(definition, value)
                if issue is not None:
                    issues.append(issue)
                    continue
                if definition.value_type == "datetime":
                    moment = parse_datetime_value(value)
                    assert moment is not None  # _check_value rejected values that do not parse
                    value = format_timestamp(moment)
            normalized[name] = value

        if creating:
            for required in schema.required_properties:
                if normalized.get(required) is None and not any(issue.name == required for issue in issues):
                    issues.append(
                        PropertyIssue(
                            required,
                            CODE_MISSING_REQUIRED_PROPERTY,
                            f"{required} is required to create a {schema.singular}",
                        )
                    )
        if issues:
            raise property_values_error(issues)
        return normalized

    def _check_value(self, definition: PropertyDefinition, value: str) -> PropertyIssue | None:
        name = definition.name
        if len(value) > TEXT_PROPERTY_MAX_CHARS:
            return PropertyIssue(
                name,
                CODE_INVALID_STRING_LENGTH,
                f"{name} is {len(value)} characters long, but the maximum is {TEXT_PROPERTY_MAX_CHARS}",
            )
        match definition.value_type:
            case "enumeration" if value not in definition.options:
                allowed = ", ".join(definition.options)
                return PropertyIssue(
                    name, CODE_INVALID_OPTION, f"{value} was not one of the allowed options: [{allowed}]"
                )
            case "owner" if value not in self._owners:
                allowed = ", ".join(sorted(self._owners, key=int))
                return PropertyIssue(
                    name, CODE_INVALID_OPTION, f"{value} was not one of the allowed options: [{allowed}]"
                )
            case "email" if not _EMAIL_PATTERN.fullmatch(value):
                return PropertyIssue(name, CODE_INVALID_EMAIL, f"Email address {value} is invalid")
            case "number":
                try:
                    float(value)
                except ValueError:
                    return PropertyIssue(name, CODE_INVALID_NUMBER, f"{value} is not a valid number for {name}")
            case "datetime" if parse_datetime_value(value) is None:
                return PropertyIssue(
                    name,
                    CODE_INVALID_DATE,
                    f"{value} is not a valid date-time for {name}: use ISO-8601 or epoch milliseconds",
                )
            case "https_url" if not value.startswith("https://"):
                return PropertyIssue(name, CODE_INVALID_URL, f"{name} must be an HTTPS URL, got {value}")
        return None

    def _check_contact_identity(self, properties: Mapping[str, str | None]) -> None:
        if not any(properties.get(name) for name in CONTACT_IDENTITY_PROPERTIES):
            raise property_values_error(
                [
                    PropertyIssue(
                        "email",
                        CODE_MISSING_REQUIRED_PROPERTY,
                        "A contact needs at least one of these properties: " + ", ".join(CONTACT_IDENTITY_PROPERTIES),
                    )
                ]
            )

    def _check_unique_email(
        self,
        email: str | None,
        *,
        exclude_id: str | None = None,
        pending: Mapping[str, str] | None = None,
    ) -> None:
        """Raise HubSpot's 409 if another contact, or an earlier input of the same batch, has this email."""
        if email is None:
            return
        lowered = email.lower()
        for contact in self._objects["contacts"].values():
            existing = contact.properties.get("email")
            if contact.id != exclude_id and existing is not None and existing.lower() == lowered:
                raise StandinError(409, CATEGORY_CONFLICT, f"Contact already exists. Existing ID: {contact.id}")
        if pending and lowered in pending:
            raise StandinError(
                409, CATEGORY_CONFLICT, f"Contact already exists. Duplicate email in this batch: {pending[lowered]}"
            )

    def _apply_calculated_properties(self, crm_object: CrmObject) -> None:
        if crm_object.object_type != "contacts":
            return
        for calculated, source in CALCULATED_PHONE_SOURCES.items():
            value = searchable_phone_number(crm_object.properties.get(source), self.default_phone_region)
            if value is None:
                crm_object.properties.pop(calculated, None)
            else:
                crm_object.properties[calculated] = value

    # -- associations ---------------------------------------------------------------------------------------------

    def _parse_inline_associations(self, schema: ObjectTypeSchema, raw: Any) -> list[tuple[AssociationType, str]]:
        """Validate the `associations` of a create request and return (type, target id) for each requested type."""
        if raw is None:
            return []
        links: list[tuple[AssociationType, str]] = []
        for index, raw_association in enumerate(_require_list(raw, "associations")):
            where = f"associations[{index}]"
            association = _require_mapping(raw_association, where)
            target = _require_mapping(association.get("to"), f"{where}.to")
            target_id = target.get("id")
            if target_id is None:
                raise validation_error(f"Invalid input: {where}.to.id is missing.")
            for type_index, raw_spec in enumerate(_require_list(association.get("types"), f"{where}.types")):
                spec = _require_mapping(raw_spec, f"{where}.types[{type_index}]")
                association_type = self._association_type_for(
                    schema.name,
                    spec.get("associationCategory"),
                    spec.get("associationTypeId"),
                    None,
                )
                links.append((association_type, str(target_id)))
        self._require_association_targets(links)
        return links

    def _association_type_for(
        self,
        from_type: str,
        category: Any,
        type_id: Any,
        to_type: str | None,
    ) -> AssociationType:
        if category != ASSOCIATION_CATEGORY:
            raise validation_error(
                f"Invalid association category {category!r}: the stand-in supports only {ASSOCIATION_CATEGORY} types.",
                errors=[{"message": "unknown association category", "code": CODE_INVALID_ASSOCIATION}],
            )
        association_type = ASSOCIATION_TYPES.get(type_id) if isinstance(type_id, int) else None
        if (
            association_type is None
            or association_type.from_type != from_type
            or (to_type is not None and association_type.to_type != to_type)
        ):
            target = f" to {to_type}" if to_type else ""
            raise validation_error(
                f"Association type id {type_id!r} is not a {ASSOCIATION_CATEGORY} type from {from_type}{target}.",
                errors=[{"message": f"invalid association type id {type_id!r}", "code": CODE_INVALID_ASSOCIATION}],
            )
        return association_type

    def _require_association_targets(self, links: Iterable[tuple[AssociationType, str]]) -> None:
        # HubSpot documents no status or message for an association to a missing object. The stand-in returns
        # 400 VALIDATION_ERROR and names the ids.
        missing = sorted(
            {
                f"{association_type.to_type} {target_id}"
                for association_type, target_id in links
                if target_id not in self._objects[association_type.to_type]
            }
        )
        if missing:
            raise validation_error(
                "Cannot create associations to objects that do not exist: " + ", ".join(missing),
                errors=[{"message": f"{item} does not exist", "code": CODE_INVALID_ASSOCIATION} for item in missing],
            )

    def _link(self, association_type: AssociationType, from_id: str, to_id: str) -> None:
        """Store an association in both directions, with the rules for primary companies."""
        if association_type.inverse_id in SINGLE_TARGET_ASSOCIATION_TYPES:
            association_type, from_id, to_id = ASSOCIATION_TYPES[association_type.inverse_id], to_id, from_id

        if association_type.type_id in SINGLE_TARGET_ASSOCIATION_TYPES:
            forward = self._associations[(association_type.from_type, from_id, association_type.to_type)]
            for other_id, type_ids in forward.items():
                if other_id != to_id and association_type.type_id in type_ids:
                    self._unlink(association_type, from_id, other_id)
                    break

        self._store_direction(
            association_type.from_type, from_id, association_type.to_type, to_id, association_type.type_id
        )
        self._store_direction(
            association_type.to_type, to_id, association_type.from_type, from_id, association_type.inverse_id
        )
        unlabeled_id = PRIMARY_TO_UNLABELED.get(association_type.type_id)
        if unlabeled_id is not None:
            self._link(ASSOCIATION_TYPES[unlabeled_id], from_id, to_id)

    def _store_direction(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        self._associations[(from_type, from_id, to_type)].setdefault(to_id, set()).add(type_id)

    def _unlink(self, association_type: AssociationType, from_id: str, to_id: str) -> None:
        for from_type, source, to_type, target, type_id in (
            (association_type.from_type, from_id, association_type.to_type, to_id, association_type.type_id),
            (association_type.to_type, to_id, association_type.from_type, from_id, association_type.inverse_id),
        ):
            targets = self._associations[(from_type, source, to_type)]
            targets.get(target, set()).discard(type_id)
            if not targets.get(target):
                targets.pop(target, None)

    def _associated(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        return self._associations.get((from_type, from_id, to_type), {})

    def _v3_associations_json(self, crm_object: CrmObject, to_types: Sequence[str]) -> JsonDict:
        result: JsonDict = {}
        for to_type in to_types:
            targets = self._associated(crm_object.object_type, crm_object.id, to_type)
            entries = [
                {"id": target_id, "type": ASSOCIATION_TYPES[type_id].name}
                for target_id in sorted(targets, key=int)
                for type_id in sorted(targets[target_id])
            ]
            if entries:
                result[to_type] = {"results": entries}
        return result

    @staticmethod
    def _v4_types_json(type_ids: Iterable[int]) -> list[JsonDict]:
        return [
            {"category": ASSOCIATION_CATEGORY, "typeId": type_id, "label": ASSOCIATION_TYPES[type_id].label}
            for type_id in sorted(type_ids)
        ]

    # -- object JSON ----------------------------------------------------------------------------------------------

    def _object_json(
        self,
        crm_object: CrmObject,
        requested: Sequence[str] | None,
        *,
        all_properties: bool = False,
    ) -> JsonDict:
        """Shape an object as HubSpot returns it.

        With all_properties every stored value is returned, as in create and update responses. Otherwise the
        requested properties are returned, or the type's defaults if none were requested, with null for unset
        ones and unknown names left out. The id and both timestamps are always included.
        """
        schema = OBJECT_TYPES[crm_object.object_type]
        if all_properties:
            properties: dict[str, str | None] = dict(crm_object.properties)
        else:
            definitions = self._properties[schema.name]
            names = list(requested) if requested else list(schema.default_properties)
            names += ["hs_object_id", schema.created_property, schema.modified_property]
            properties = {name: crm_object.properties.get(name) for name in dict.fromkeys(names) if name in definitions}
        return {
            "id": crm_object.id,
            "properties": properties,
            "createdAt": format_timestamp(crm_object.created_at),
            "updatedAt": format_timestamp(crm_object.updated_at),
            "archived": crm_object.archived,
        }

    def _find_object(self, schema: ObjectTypeSchema, object_id: str, id_property: str | None = None) -> CrmObject:
        objects = self._objects[schema.name]
        if id_property in (None, "hs_object_id"):
            found = objects.get(object_id)
        else:
            lowered = object_id.lower()
            found = next(
                (obj for obj in objects.values() if (obj.properties.get(id_property) or "").lower() == lowered),
                None,
            )
        if found is None or found.archived:
            raise StandinError(
                404,
                CATEGORY_OBJECT_NOT_FOUND,
                "Object not found.  objectId are usually numeric.",
                context={"id": [object_id]},
            )
        return found

    # -- objects: create, read, update, list ----------------------------------------------------------------------

    def _prepare_create(
        self,
        schema: ObjectTypeSchema,
        body: Any,
        *,
        pending_emails: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, str], list[tuple[AssociationType, str]]]:
        """Validate one create input and return its properties and associations without storing anything."""
        request = _require_mapping(body, "the request body")
        normalized = self._normalize_properties(schema, request.get("properties", {}), creating=True)
        properties = {name: value for name, value in normalized.items() if value is not None}
        if schema.name == "contacts":
            self._check_contact_identity(properties)
            self._check_unique_email(properties.get("email"), pending=pending_emails)
        links = self._parse_inline_associations(schema, request.get("associations"))
        return properties, links

    def _store_new_object(
        self,
        schema: ObjectTypeSchema,
        properties: dict[str, str],
        links: Sequence[tuple[AssociationType, str]],
        *,
        requested_id: Any = None,
        seeded: bool = False,
    ) -> CrmObject:
        object_id = self._allocate_id(requested_id)
        now = self._now()
        created = properties.get(schema.created_property, format_timestamp(now))
        stored = {
            **properties,
            "hs_object_id": object_id,
            schema.created_property: created,
            schema.modified_property: format_timestamp(now),
        }
        crm_object = CrmObject(schema.name, object_id, stored, now, now, seeded=seeded)
        self._apply_calculated_properties(crm_object)
        self._objects[schema.name][object_id] = crm_object
        for association_type, target_id in links:
            self._link(association_type, object_id, target_id)
        logger.debug("created %s %s with %d associations", schema.singular, object_id, len(links))
        return crm_object

    def create_object(self, object_type: str, body: Any, *, object_id: Any = None, seeded: bool = False) -> JsonDict:
        """Create an object from a HubSpot create body ({properties, associations}) and return it as HubSpot does.

        object_id sets the id for seeding. HubSpot itself never accepts one. seeded marks the object as data that
        existed before, which search finds at once whatever the search lag.
        """
        schema = self.resolve_object_type(object_type)
        with self._lock:
            properties, links = self._prepare_create(schema, body)
            crm_object = self._store_new_object(schema, properties, links, requested_id=object_id, seeded=seeded)
            return self._object_json(crm_object, None, all_properties=True)

    def get_object(
        self,
        object_type: str,
        object_id: str,
        *,
        properties: Sequence[str] | None = None,
        associations: Sequence[str] = (),
        id_property: str | None = None,
    ) -> JsonDict:
        """Read one object with the requested properties and, if requested, its associations in v3 form.

        Unknown property names and unknown object types in `associations` are ignored, as HubSpot does.
        """
        schema = self.resolve_object_type(object_type)
        to_types = _known_object_types(associations)
        with self._lock:
            crm_object = self._find_object(schema, object_id, id_property)
            result = self._object_json(crm_object, properties)
            linked = self._v3_associations_json(crm_object, to_types)
            if linked:
                result["associations"] = linked
            return result

    def update_object(self, object_type: str, object_id: str, body: Any) -> JsonDict:
        """Apply a PATCH body ({properties}) and return the updated object with all its properties."""
        schema = self.resolve_object_type(object_type)
        with self._lock:
            crm_object = self._find_object(schema, object_id)
            request = _require_mapping(body, "the request body")
            changes = self._normalize_properties(schema, request.get("properties", {}), creating=False)
            merged = {**crm_object.properties, **changes}
            if schema.name == "contacts" and "email" in changes:
                self._check_unique_email(changes["email"], exclude_id=crm_object.id)
            for required in schema.required_properties:
                if merged.get(required) is None:
                    raise property_values_error(
                        [
                            PropertyIssue(
                                required,
                                CODE_MISSING_REQUIRED_PROPERTY,
                                f"{required} cannot be cleared on a {schema.singular}",
                            )
                        ]
                    )

            now = self._now()
            crm_object.properties = {name: value for name, value in merged.items() if value is not None}
            crm_object.properties[schema.modified_property] = format_timestamp(now)
            crm_object.updated_at = now
            self._apply_calculated_properties(crm_object)
            return self._object_json(crm_object, None, all_properties=True)

    def list_objects(
        self,
        object_type: str,
        *,
        limit: int | str = LIST_DEFAULT_LIMIT,
        after: str | None = None,
        properties: Sequence[str] | None = None,
        associations: Sequence[str] = (),
    ) -> JsonDict:
        """List objects in id order. `after` is the id of the last object of the previous page."""
        schema = self.resolve_object_type(object_type)
        limit = _require_int(limit, "limit", minimum=1, maximum=LIST_MAX_LIMIT)
        after_id = _require_int(after, "after", minimum=0) if after else 0
        to_types = _known_object_types(associations)
        with self._lock:
            ordered = sorted(
                (obj for obj in self._objects[schema.name].values() if not obj.archived and int(obj.id) > after_id),
                key=lambda obj: int(obj.id),
            )
            page = ordered[:limit]
            results = []
            for crm_object in page:
                entry = self._object_json(crm_object, properties)
                linked = self._v3_associations_json(crm_object, to_types)
                if linked:
                    entry["associations"] = linked
                results.append(entry)
        response: JsonDict = {"results": results}
        if len(ordered) > limit:
            response["paging"] = {"next": {"after": page[-1].id}}
        return response

    # -- batch create and read ------------------------------------------------------------------------------------

    def batch_create(self, object_type: str, body: Any) -> tuple[int, JsonDict]:
        """Create up to 100 objects and return (HTTP status, body).

        With an objectWriteTraceId on every input, failed inputs are reported in a 207 and the others are
        created. Otherwise the first failure fails the whole request and nothing is created.
        """
        schema = self.resolve_object_type(object_type)
        inputs = self._batch_inputs(body)
        started = format_timestamp(self._now())
        traced = all(isinstance(item, Mapping) and item.get("objectWriteTraceId") for item in inputs)

        with self._lock:
            prepared: list[tuple[int, dict[str, str], list[tuple[AssociationType, str]]]] = []
            errors: list[JsonDict] = []
            pending_emails: dict[str, str] = {}
            for index, item in enumerate(inputs):
                try:
                    properties, links = self._prepare_create(schema, item, pending_emails=pending_emails)
                except StandinError as error:
                    if not traced:
                        raise
                    trace_id = str(item["objectWriteTraceId"])
                    errors.append(error.to_batch_error({"objectWriteTraceId": [trace_id]}))
                    continue
                email = properties.get("email")
                if schema.name == "contacts" and email is not None:
                    pending_emails[email.lower()] = f"input {index}"
                prepared.append((index, properties, links))

            results = []
            for index, properties, links in prepared:
                crm_object = self._store_new_object(schema, properties, links)
                result = self._object_json(crm_object, None, all_properties=True)
                raw_trace_id = inputs[index].get("objectWriteTraceId")
                if raw_trace_id:
                    result["objectWriteTraceId"] = str(raw_trace_id)
                results.append(result)

        response: JsonDict = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": format_timestamp(self._now()),
        }
        if errors:
            response["numErrors"] = len(errors)
            response["errors"] = errors
            return 207, response
        return 201, response

    def batch_read(self, object_type: str, body: Any) -> tuple[int, JsonDict]:
        """Read up to 100 objects by id, or by the unique property named in idProperty. A 207 lists missing ids."""
        schema = self.resolve_object_type(object_type)
        request = _require_mapping(body, "the request body")
        inputs = self._batch_inputs(request)
        raw_properties = request.get("properties")
        properties = None if raw_properties is None else _require_string_list(raw_properties, "properties")
        id_property = request.get("idProperty")
        if id_property is not None and id_property not in self._properties[schema.name]:
            raise validation_error(f"Invalid idProperty {id_property!r}: no such {schema.singular} property.")
        started = format_timestamp(self._now())

        results: list[JsonDict] = []
        missing: list[str] = []
        with self._lock:
            for index, item in enumerate(inputs):
                object_id = _require_mapping(item, f"inputs[{index}]").get("id")
                if object_id is None:
                    raise validation_error(f"Invalid input: inputs[{index}].id is missing.")
                try:
                    crm_object = self._find_object(schema, str(object_id), id_property)
                except StandinError:
                    missing.append(str(object_id))
                    continue
                results.append(self._object_json(crm_object, properties))

        response: JsonDict = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": format_timestamp(self._now()),
        }
        if not missing:
            return 200, response
        response["numErrors"] = 1
        response["errors"] = [
            {
                "status": "error",
                "category": CATEGORY_OBJECT_NOT_FOUND,
                "message": f"Could not get some {schema.singular.upper()} objects, they may be deleted or not exist. "
                "Check that ids are valid.",
                "context": {"ids": missing},
            }
        ]
        return 207, response

    @staticmethod
    def _batch_inputs(body: Any, maximum: int = BATCH_MAX_INPUTS) -> list[Mapping[str, Any]]:
        request = _require_mapping(body, "the request body")
        inputs = _require_list(request.get("inputs"), "inputs")
        if len(inputs) > maximum:
            raise validation_error(f"Too many inputs: {len(inputs)}, but a batch takes at most {maximum}.")
        for index, item in enumerate(inputs):
            _require_mapping(item, f"inputs[{index}]")
        return inputs

    # -- search ---------------------------------------------------------------------------------------------------

    def search(self, object_type: str, body: Any, body_chars: int) -> JsonDict:
        """Run a CRM search: filter groups are ORed, filters in a group ANDed, at most 10,000 results reachable."""
        schema = self.resolve_object_type(object_type)
        request = parse_search_request(body, body_chars)
        with self._lock:
            definitions = self._properties[schema.name]
            self._check_search_properties(schema, request, definitions)
            visible_before = datetime.now(UTC) - timedelta(seconds=self.search_lag_seconds)
            matches = [
                crm_object
                for crm_object in self._objects[schema.name].values()
                if not crm_object.archived
                and (crm_object.seeded or crm_object.created_at <= visible_before)
                and self._matches_search(crm_object, request, definitions)
            ]
            matches.sort(key=lambda obj: int(obj.id))
            if request.sort_property is not None:
                self._sort_objects(matches, definitions[request.sort_property], request.sort_descending)

            reachable = min(len(matches), SEARCH_MAX_RESULTS)
            end = min(request.after + request.limit, reachable)
            page = matches[request.after : end]
            results = [self._object_json(crm_object, request.properties) for crm_object in page]

        response: JsonDict = {"total": len(matches), "results": results}
        if end < reachable and request.limit > 0:
            response["paging"] = {"next": {"after": str(end)}}
        return response

    def _check_search_properties(
        self,
        schema: ObjectTypeSchema,
        request: SearchRequest,
        definitions: Mapping[str, PropertyDefinition],
    ) -> None:
        for group in request.filter_groups:
            for search_filter in group:
                name = search_filter.property_name
                if name.startswith(ASSOCIATION_FILTER_PREFIX):
                    self.resolve_object_type(name.removeprefix(ASSOCIATION_FILTER_PREFIX))
                    if search_filter.operator not in ASSOCIATION_FILTER_OPERATORS:
                        raise validation_error(
                            f"Operator {search_filter.operator} is not supported on {name}: use EQ or IN."
                        )
                    continue
                definition = definitions.get(name)
                if definition is None:
                    raise validation_error(
                        f'Property "{name}" does not exist on {schema.name}.',
                        errors=[
                            {
                                "message": f'Property "{name}" does not exist',
                                "code": CODE_PROPERTY_DOESNT_EXIST,
                                "context": {"propertyName": [name]},
                            }
                        ],
                    )
                for value in (search_filter.value, search_filter.high_value, *search_filter.values):
                    if value is None or search_filter.operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
                        continue
                    try:
                        comparable_value(definition, value)
                    except ValueError:
                        raise validation_error(
                            f"Invalid filter value {value!r} for {name}, a {definition.value_type} property."
                        ) from None
        if request.sort_property is not None and request.sort_property not in definitions:
            raise validation_error(f'Cannot sort by "{request.sort_property}": no such {schema.singular} property.')

    def _matches_search(
        self,
        crm_object: CrmObject,
        request: SearchRequest,
        definitions: Mapping[str, PropertyDefinition],
    ) -> bool:
        if request.query is not None and not self._matches_query(crm_object, request.query):
            return False
        if not request.filter_groups:
            return True
        return any(
            all(self._matches_filter(crm_object, search_filter, definitions) for search_filter in group)
            for group in request.filter_groups
        )

    def _matches_filter(
        self,
        crm_object: CrmObject,
        search_filter: SearchFilter,
        definitions: Mapping[str, PropertyDefinition],
    ) -> bool:
        name = search_filter.property_name
        if name.startswith(ASSOCIATION_FILTER_PREFIX):
            to_type = self.resolve_object_type(name.removeprefix(ASSOCIATION_FILTER_PREFIX)).name
            requested_ids = set(search_filter.values) if search_filter.operator == "IN" else {search_filter.value}
            return not requested_ids.isdisjoint(self._associated(crm_object.object_type, crm_object.id, to_type))
        return property_filter_matches(crm_object.properties.get(name), search_filter, definitions[name])

    @staticmethod
    def _matches_query(crm_object: CrmObject, query: str) -> bool:
        # HubSpot's free-text query searches a fixed set of properties per type with its own tokenizer. This
        # substring match over the type's default properties is a simplification.
        lowered = query.lower()
        schema = OBJECT_TYPES[crm_object.object_type]
        return any(lowered in (crm_object.properties.get(name) or "").lower() for name in schema.default_properties)

    @staticmethod
    def _sort_objects(objects: list[CrmObject], definition: PropertyDefinition, descending: bool) -> None:
        """Sort by one property, objects without a value last in either direction."""

        def sort_key(crm_object: CrmObject) -> tuple[int, float | str]:
            raw = crm_object.properties.get(definition.name)
            if raw is None:
                return (1, "")
            try:
                key = comparable_value(definition, raw)
            except ValueError:
                key = raw.lower()
            return (0, key)

        with_value = [obj for obj in objects if obj.properties.get(definition.name) is not None]
        without_value = [obj for obj in objects if obj.properties.get(definition.name) is None]
        with_value.sort(key=sort_key, reverse=descending)
        objects[:] = with_value + without_value

    # -- associations v4 ------------------------------------------------------------------------------------------

    def get_associations(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        *,
        limit: int | str = ASSOCIATIONS_PAGE_DEFAULT_LIMIT,
        after: str | None = None,
    ) -> JsonDict:
        """List an object's associations to one object type in v4 form, in target id order."""
        from_schema = self.resolve_object_type(from_type)
        to_schema = self.resolve_object_type(to_type)
        limit = _require_int(limit, "limit", minimum=1, maximum=ASSOCIATIONS_PAGE_DEFAULT_LIMIT)
        after_id = _require_int(after, "after", minimum=0) if after else 0
        with self._lock:
            self._find_object(from_schema, from_id)
            targets = self._associated(from_schema.name, from_id, to_schema.name)
            ordered = [target for target in sorted(targets, key=int) if int(target) > after_id]
            results = [
                {"toObjectId": int(target), "associationTypes": self._v4_types_json(targets[target])}
                for target in ordered[:limit]
            ]
        response: JsonDict = {"results": results}
        if len(ordered) > limit:
            response["paging"] = {"next": {"after": ordered[limit - 1]}}
        return response

    def create_default_association(self, from_type: str, from_id: str, to_type: str, to_id: str) -> JsonDict:
        """Create the unlabeled association between two objects, in both directions, as v4's PUT .../default does."""
        from_schema = self.resolve_object_type(from_type)
        to_schema = self.resolve_object_type(to_type)
        association_type = default_association_type(from_schema.name, to_schema.name)
        if association_type is None:
            raise validation_error(f"{from_schema.name} cannot be associated with {to_schema.name}.")
        started = format_timestamp(self._now())
        with self._lock:
            self._find_object(from_schema, from_id)
            self._require_association_targets([(association_type, to_id)])
            self._link(association_type, from_id, to_id)
        results = [
            {
                "from": {"id": source},
                "to": {"id": target},
                "associationSpec": {"associationCategory": ASSOCIATION_CATEGORY, "associationTypeId": type_id},
            }
            for source, target, type_id in (
                (from_id, to_id, association_type.type_id),
                (to_id, from_id, association_type.inverse_id),
            )
        ]
        return {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": format_timestamp(self._now()),
        }

    def batch_create_associations(self, from_type: str, to_type: str, body: Any) -> tuple[int, JsonDict]:
        """Create up to 2,000 labeled or unlabeled associations. Failed inputs are reported in a 207."""
        from_schema = self.resolve_object_type(from_type)
        to_schema = self.resolve_object_type(to_type)
        inputs = self._batch_inputs(body, ASSOCIATIONS_BATCH_CREATE_MAX_INPUTS)
        started = format_timestamp(self._now())
        results: list[JsonDict] = []
        errors: list[JsonDict] = []
        with self._lock:
            for index, item in enumerate(inputs):
                from_id = str(_require_mapping(item.get("from"), f"inputs[{index}].from").get("id"))
                to_id = str(_require_mapping(item.get("to"), f"inputs[{index}].to").get("id"))
                try:
                    types = [
                        self._association_type_for(
                            from_schema.name,
                            spec.get("associationCategory"),
                            spec.get("associationTypeId"),
                            to_schema.name,
                        )
                        for spec in (
                            _require_mapping(raw, f"inputs[{index}].types[]")
                            for raw in _require_list(item.get("types"), f"inputs[{index}].types")
                        )
                    ]
                    self._find_object(from_schema, from_id)
                    self._require_association_targets([(association_type, to_id) for association_type in types])
                except StandinError as error:
                    errors.append(error.to_batch_error({"fromObjectId": [from_id], "toObjectId": [to_id]}))
                    continue
                for association_type in types:
                    self._link(association_type, from_id, to_id)
                labels = [t.label for t in types if t.label is not None]
                results.append(
                    {
                        "fromObjectTypeId": from_schema.type_id,
                        "fromObjectId": int(from_id),
                        "toObjectTypeId": to_schema.type_id,
                        "toObjectId": int(to_id),
                        "labels": labels,
                    }
                )
        response: JsonDict = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": format_timestamp(self._now()),
        }
        if errors:
            response["numErrors"] = len(errors)
            response["errors"] = errors
            return 207, response
        return 201, response

    def batch_read_associations(self, from_type: str, to_type: str, body: Any) -> tuple[int, JsonDict]:
        """Read the associations of up to 1,000 objects to one type. Objects with none are reported in a 207."""
        from_schema = self.resolve_object_type(from_type)
        to_schema = self.resolve_object_type(to_type)
        inputs = self._batch_inputs(body, ASSOCIATIONS_BATCH_READ_MAX_INPUTS)
        started = format_timestamp(self._now())
        results: list[JsonDict] = []
        errors: list[JsonDict] = []
        with self._lock:
            for index, item in enumerate(inputs):
                from_id = item.get("id")
                if from_id is None:
                    raise validation_error(f"Invalid input: inputs[{index}].id is missing.")
                targets = self._associated(from_schema.name, str(from_id), to_schema.name)
                if not targets:
                    # HubSpot documents no response for an object without associations. The stand-in reports it
                    # as an error of the 207, with subCategory crm.associations.NO_ASSOCIATIONS_FOUND.
                    errors.append(
                        {
                            "status": "error",
                            "category": CATEGORY_VALIDATION_ERROR,
                            "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                            "message": f"No {to_schema.singular} is associated with {from_schema.singular} {from_id}.",
                            "context": {"fromObjectId": [str(from_id)]},
                        }
                    )
                    continue
                results.append(
                    {
                        "from": {"id": str(from_id)},
                        "to": [
                            {"toObjectId": int(target), "associationTypes": self._v4_types_json(targets[target])}
                            for target in sorted(targets, key=int)
                        ],
                    }
                )
        response: JsonDict = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": format_timestamp(self._now()),
        }
        if errors:
            response["numErrors"] = len(errors)
            response["errors"] = errors
            return 207, response
        return 200, response

    # -- owners ---------------------------------------------------------------------------------------------------

    def add_owner(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        owner_id: Any = None,
        user_id: Any = None,
    ) -> JsonDict:
        """Store an owner and return it in the Owners API form. Ids that are not given are allocated."""
        if not isinstance(email, str) or not _EMAIL_PATTERN.fullmatch(email):
            raise validation_error(f"Invalid owner email {email!r}.")
        with self._lock:
            if any(owner.email.lower() == email.lower() for owner in self._owners.values()):
                raise StandinError(409, CATEGORY_CONFLICT, f"An owner with email {email} already exists.")
            new_id = self._allocate_id(owner_id)
            new_user_id = int(self._allocate_id(user_id))
            owner = Owner(new_id, email, first_name, last_name, new_user_id, self._now())
            self._owners[new_id] = owner
            return owner.to_json()

    def list_owners(
        self,
        *,
        email: str | None = None,
        limit: int | str = OWNERS_DEFAULT_LIMIT,
        after: str | None = None,
    ) -> JsonDict:
        """List owners in id order, filtered by email case-insensitively. `after` is an offset."""
        limit = _require_int(limit, "limit", minimum=1, maximum=OWNERS_MAX_LIMIT)
        offset = _require_int(after, "after", minimum=0) if after else 0
        with self._lock:
            owners = sorted(self._owners.values(), key=lambda owner: int(owner.id))
            if email:
                owners = [owner for owner in owners if owner.email.lower() == email.lower()]
            page = owners[offset : offset + limit]
            response: JsonDict = {"results": [owner.to_json() for owner in page]}
        if offset + limit < len(owners):
            response["paging"] = {"next": {"after": str(offset + limit)}}
        return response

    def get_owner(self, owner_id: str, *, id_property: str = "id") -> JsonDict:
        """Read one owner by `id` or, with id_property="userId", by user id."""
        if id_property not in ("id", "userId"):
            raise validation_error(f"Invalid idProperty {id_property!r}: use id or userId.")
        with self._lock:
            for owner in self._owners.values():
                key = owner.id if id_property == "id" else str(owner.user_id)
                if key == owner_id:
                    return owner.to_json()
        raise StandinError(404, CATEGORY_OBJECT_NOT_FOUND, f"Could not find owner with {id_property} {owner_id}.")

    # -- seeding and inspection -----------------------------------------------------------------------------------

    def seed(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        """Store owners and objects from the admin seed format and return the ids created, by key.

        Keys are "owners" ({id?, email, firstName, lastName, userId?}) and any object type name. Object entries
        are {id?, properties, associations?}, and contacts may name a "primary_company_id". Owners are stored
        first, then companies, then contacts and the other types. The whole seed is rolled back on an error.
        Seeded objects are searchable at once, whatever the search lag.
        """
        data = _require_mapping(data, "the seed")
        unknown = [key for key in data if key != "owners" and key not in OBJECT_TYPES]
        if unknown:
            raise validation_error(f"Unknown seed keys {unknown}: use owners or one of {sorted(OBJECT_TYPES)}.")
        with self._lock:
            snapshot = self._snapshot()
            try:
                created = self._seed_unlocked(data)
            except Exception:
                self._restore(snapshot)
                raise
        logger.info("seeded %s", ", ".join(f"{len(ids)} {key}" for key, ids in created.items()) or "nothing")
        return created

    def _seed_unlocked(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        created: dict[str, list[str]] = {}
        if "owners" in data:
            created["owners"] = []
            for index, raw_owner in enumerate(_require_list(data["owners"], "owners")):
                owner = _require_mapping(raw_owner, f"owners[{index}]")
                stored = self.add_owner(
                    owner.get("email", ""),
                    owner.get("firstName", ""),
                    owner.get("lastName", ""),
                    owner_id=owner.get("id"),
                    user_id=owner.get("userId"),
                )
                created["owners"].append(stored["id"])

        order = ["companies", "contacts"] + [name for name in OBJECT_TYPES if name not in ("companies", "contacts")]
        for object_type in order:
            if object_type not in data:
                continue
            created[object_type] = []
            for index, raw_entry in enumerate(_require_list(data[object_type], object_type)):
                entry = _require_mapping(raw_entry, f"{object_type}[{index}]")
                body: JsonDict = {"properties": entry.get("properties", {})}
                associations = list(
                    _require_list(entry.get("associations", []), f"{object_type}[{index}].associations")
                )
                primary_company_id = entry.get("primary_company_id")
                if primary_company_id is not None:
                    if object_type != "contacts":
                        raise validation_error(f"primary_company_id is only valid on contacts, not {object_type}.")
                    associations.append(
                        {
                            "to": {"id": str(primary_company_id)},
                            "types": [{"associationCategory": ASSOCIATION_CATEGORY, "associationTypeId": 1}],
                        }
                    )
                body["associations"] = associations
                stored = self.create_object(object_type, body, object_id=entry.get("id"), seeded=True)
                created[object_type].append(stored["id"])
        return created

    def _snapshot(self) -> JsonDict:
        return {
            "next_id": self._next_id,
            "objects": copy.deepcopy(self._objects),
            "associations": copy.deepcopy(self._associations),
            "owners": copy.deepcopy(self._owners),
        }

    def _restore(self, snapshot: JsonDict) -> None:
        self._next_id = snapshot["next_id"]
        self._objects = snapshot["objects"]
        self._associations = snapshot["associations"]
        self._owners = snapshot["owners"]

    def dump_objects(self, object_type: str, properties: Sequence[str] | None = None) -> list[JsonDict]:
        """Return every stored object of a type with its associations, in id order.

        All properties are returned unless `properties` names some: a benchmark's 10,000 CALLs with whole
        transcripts would otherwise make a response of hundreds of megabytes.
        """
        schema = self.resolve_object_type(object_type)
        with self._lock:
            dumped = []
            for crm_object in sorted(self._objects[schema.name].values(), key=lambda obj: int(obj.id)):
                entry = self._object_json(crm_object, properties, all_properties=not properties)
                entry["associations"] = {
                    to_type: [
                        {
                            "id": target,
                            "typeId": type_id,
                            "type": ASSOCIATION_TYPES[type_id].name,
                            "label": ASSOCIATION_TYPES[type_id].label,
                        }
                        for target in sorted(targets, key=int)
                        for type_id in sorted(targets[target])
                    ]
                    for to_type in OBJECT_TYPES
                    if (targets := self._associated(schema.name, crm_object.id, to_type))
                }
                dumped.append(entry)
            return dumped

    def dump_associations(self) -> list[JsonDict]:
        """Return every stored association direction as a flat list, ordered by source and target."""
        with self._lock:
            rows: list[JsonDict] = [
                {
                    "fromObjectType": from_type,
                    "fromObjectId": from_id,
                    "toObjectType": to_type,
                    "toObjectId": to_id,
                    "associationCategory": ASSOCIATION_CATEGORY,
                    "associationTypeId": type_id,
                    "type": ASSOCIATION_TYPES[type_id].name,
                    "label": ASSOCIATION_TYPES[type_id].label,
                }
                for (from_type, from_id, to_type), targets in self._associations.items()
                for to_id, type_ids in targets.items()
                for type_id in type_ids
            ]
        rows.sort(
            key=lambda row: (
                row["fromObjectType"],
                int(row["fromObjectId"]),
                row["toObjectType"],
                int(row["toObjectId"]),
                row["associationTypeId"],
            )
        )
        return rows

    def dump_owners(self) -> list[JsonDict]:
        with self._lock:
            return [owner.to_json() for owner in sorted(self._owners.values(), key=lambda owner: int(owner.id))]


def _known_object_types(names: Iterable[str]) -> list[str]:
    """Return the plural names of the object types among `names`, skipping names that are no object type."""
    known = []
    for name in names:
        try:
            known.append(StandinState.resolve_object_type(name).name)
        except StandinError:
            continue
    return known


def _optional_str(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise validation_error(f"Invalid fault: {key} must be a string.")
    return value


def _optional_bool(spec: Mapping[str, Any], key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise validation_error(f"Invalid fault: {key} must be true or false, got {value!r}.")
    return value


def _fault_seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise validation_error(f"Invalid fault: {key} must be a number of seconds, got {value!r}.")
    if not 0 <= value <= FAULT_MAX_DELAY_SECONDS:
        raise validation_error(f"Invalid fault: {key} must be between 0 and {FAULT_MAX_DELAY_SECONDS}, got {value}.")
    return float(value)


def _fault_scopes(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise validation_error("Invalid fault: required_scopes must be a non-empty list of scope names.")
    return tuple(value)
