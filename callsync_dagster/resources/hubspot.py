"""HubSpot CRM client over httpx, and the Dagster resource that configures it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from dagster import ConfigurableResource, InitResourceContext, get_dagster_logger
from pydantic import Field, PrivateAttr

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.resources.hubspot_errors import (
    HubSpotAuthError,
    HubSpotConflictError,
    HubSpotError,
    HubSpotNotFoundError,
    HubSpotRateLimitError,
    HubSpotTransientError,
    HubSpotValidationError,
)
from callsync_dagster.resources.rate_limit import SlidingWindowLimiter

DEFAULT_BASE_URL = "https://api.hubapi.com"

# HubSpot publishes date-versioned paths beside v3/v4 and plans to retire v3/v4 in September 2027; every
# path callsync uses is here so a move is one edit.
PATHS = {
    "contacts_search": "/crm/v3/objects/contacts/search",
    "contacts_create": "/crm/v3/objects/contacts",
    "contact_companies": "/crm/v4/objects/contacts/{contact_id}/associations/companies",
    "owners": "/crm/v3/owners",
    "calls_search": "/crm/v3/objects/calls/search",
    "calls_create": "/crm/v3/objects/calls",
    "call_read": "/crm/v3/objects/calls/{call_id}",
    "call_associate_default": "/crm/v4/objects/calls/{call_id}/associations/default/{to_object_type}/{to_id}",
}

# Statuses after which a sent POST may already have been applied (HubSpot's error table).
_MAY_HAVE_APPLIED_STATUSES = frozenset({500, 502, 503, 504, 521, 523, 524})
_TRANSIENT_STATUSES = frozenset({423, 500, 502, 503, 504, 521, 523, 524})
# HubSpot's error documentation calls for a wait of at least 2 s after a 423 (record locked during a high-volume sync).
_LOCKED_MIN_WAIT_SECONDS = 2.0


class HubSpotClient:
    """The HubSpot operations callsync needs, with retries and typed errors.

    Reads and searches retry 429, 5xx and network failures with bounded exponential backoff. Creates
    retry only failures where HubSpot cannot have applied the request (429, 423 and connection
    errors). Anything else is raised at once, so the caller can look for the object before creating again.
    """

    def __init__(
        self,
        access_token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = 30.0,
        max_retries: int = 4,
        backoff_initial_seconds: float = 1.0,
        backoff_max_seconds: float = 30.0,
        requests_per_ten_seconds: int = 100,
        searches_per_second: int = 4,
        logger: logging.Logger | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
            transport=transport,
        )
        self._max_retries = max_retries
        self._backoff_initial_seconds = backoff_initial_seconds
        self._backoff_max_seconds = backoff_max_seconds
        self._log = logger or logging.getLogger(__name__)
        self._owner_ids_by_email: dict[str, str | None] = {}
        # HubSpot counts searches against their own per-second limit and everything else against the
        # ten-second burst limit.
        self._general_limiter = SlidingWindowLimiter(requests_per_ten_seconds, 10.0)
        self._search_limiter = SlidingWindowLimiter(searches_per_second, 1.0)
        self.request_count = 0

    def close(self) -> None:
        self._http.close()

    # Contacts

    def search_contacts_by_phone(self, national_significant_number: str) -> list[dict[str, Any]]:
        """Search contacts whose phone or mobile phone has this number.

        HubSpot's calculated phone properties hold the number without the country code, so the filter
        uses the national significant number. Results are candidates that the caller must confirm.
        """
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": prop, "operator": "EQ", "value": national_significant_number}]}
                for prop in (hs.SEARCHABLE_PHONE_PROPERTY, hs.SEARCHABLE_MOBILE_PROPERTY)
            ],
            "properties": list(hs.CONTACT_PROPERTIES_READ),
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
            "limit": 100,
        }
        return self._request("POST", PATHS["contacts_search"], json=body, idempotent=True).get("results", [])

    def create_contact(self, properties: dict[str, str]) -> str:
        """Create a contact and return its id; a 409 for an existing email returns that contact's id."""
        try:
            created = self._request("POST", PATHS["contacts_create"], json={"properties": properties}, idempotent=False)
        except HubSpotConflictError as conflict:
            if conflict.existing_id:
                return conflict.existing_id
            raise
        return str(created["id"])

    def get_primary_company_id(self, contact_id: str) -> str | None:
        """Return the id of the contact's primary company (association type 1), or None."""
        path = PATHS["contact_companies"].format(contact_id=contact_id)
        for result in self._request("GET", path, idempotent=True).get("results", []):
            type_ids = {association.get("typeId") for association in result.get("associationTypes", [])}
            if hs.CONTACT_TO_PRIMARY_COMPANY in type_ids:
                return str(result["toObjectId"])
        return None

    # Owners

    def find_owner_id_by_email(self, email: str) -> str | None:
        """Return the owner `id` (not `userId`) for an email, cached for the life of this client."""
        key = email.strip().lower()
        if key in self._owner_ids_by_email:
            return self._owner_ids_by_email[key]

        owner_id = None
        response = self._request("GET", PATHS["owners"], params={"email": key, "limit": 100}, idempotent=True)
        for owner in response.get("results", []):
            # The email filter is documented, but its case handling is not: compare on the client.
            if str(owner.get("email", "")).lower() == key and not owner.get("archived", False):
                owner_id = str(owner["id"])
                break
        self._owner_ids_by_email[key] = owner_id
        return owner_id

    # Calls

    def search_calls_by_external_id(self, external_id: str) -> list[str]:
        """Return the ids of CALLs whose `hs_call_external_id` equals `external_id`, oldest first."""
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "hs_call_external_id", "operator": "EQ", "value": external_id}]}
            ],
            "properties": ["hs_call_external_id"],
            "limit": 10,
        }
        results = self._request("POST", PATHS["calls_search"], json=body, idempotent=True).get("results", [])
        matching_ids = [
            str(result["id"])
            for result in results
            if (result.get("properties") or {}).get("hs_call_external_id") == external_id
        ]
        return sorted(matching_ids, key=lambda call_id: (len(call_id), call_id))

    def create_call(self, properties: dict[str, str], associations: list[dict[str, Any]]) -> str:
        """Create a CALL with inline associations and return its id."""
        body = {"properties": properties, "associations": associations}
        return str(self._request("POST", PATHS["calls_create"], json=body, idempotent=False)["id"])

    def get_call(self, call_id: str) -> dict[str, Any]:
        """Read a CALL back with its properties and its contact, company and deal associations."""
        params = {"properties": ",".join(hs.CALL_PROPERTIES_READ), "associations": "contacts,companies,deals"}
        return self._request("GET", PATHS["call_read"].format(call_id=call_id), params=params, idempotent=True)

    def associate_call(self, call_id: str, to_object_type: str, to_id: str) -> None:
        """Add the default association from a CALL to a contact, company or deal (safe to repeat)."""
        path = PATHS["call_associate_default"].format(call_id=call_id, to_object_type=to_object_type, to_id=to_id)
        self._request("PUT", path, idempotent=True)

    # Transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            limiter = self._search_limiter if path.endswith("/search") else self._general_limiter
            limiter.acquire()
            try:
                self.request_count += 1
                response = self._http.request(method, path, json=json, params=params)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                # The request never reached HubSpot, so even a create is safe to send again.
                failure: HubSpotError = HubSpotTransientError(
                    f"could not connect: {type(error).__name__}", method=method, path=path
                )
                wait = None
            except httpx.TransportError as error:
                failure = HubSpotTransientError(
                    f"no response: {type(error).__name__}", may_have_applied=True, method=method, path=path
                )
                wait = None
            else:
                if response.is_success:
                    return response.json() if response.content else {}
                failure = _error_from_response(response, method, path)
                wait = _retry_after_seconds(response)

            if not self._should_retry(failure, idempotent) or attempt > self._max_retries:
                raise failure
            delay = self._backoff_seconds(attempt, failure, wait)
            self._log.warning(
                "HubSpot %s %s failed (%s); retry %d of %d in %.1f s",
                method,
                path,
                failure.message,
                attempt,
                self._max_retries,
                delay,
            )
            time.sleep(delay)

    def _should_retry(self, failure: HubSpotError, idempotent: bool) -> bool:
        if isinstance(failure, HubSpotRateLimitError):
            return failure.policy_name != "DAILY"
        if isinstance(failure, HubSpotTransientError):
            return idempotent or not failure.may_have_applied
        return False

    def _backoff_seconds(self, attempt: int, failure: HubSpotError, retry_after: float | None) -> float:
        exponential = min(self._backoff_initial_seconds * 2 ** (attempt - 1), self._backoff_max_seconds)
        # Jitter spreads retries of concurrent runs so they do not hit the rate limit together.
        delay = exponential * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._backoff_max_seconds))
        if failure.status == 423:
            delay = max(delay, _LOCKED_MIN_WAIT_SECONDS)
        return delay


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_from_response(response: httpx.Response, method: str, path: str) -> HubSpotError:
    """Turn a non-2xx response into one of callsync's HubSpot exceptions."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}

    status = response.status_code
    message = str(body.get("message") or response.reason_phrase or "no message")
    details = {
        "status": status,
        "category": body.get("category") or body.get("errorType"),
        "correlation_id": body.get("correlationId") or response.headers.get("X-HubSpot-Correlation-Id"),
        "method": method,
        "path": path,
    }

    if status == 401:
        return HubSpotAuthError(
            f"{message}. The access token is invalid or expired: create a new private-app token and set "
            "HUBSPOT_ACCESS_TOKEN",
            **details,
        )
    if status == 403:
        return HubSpotAuthError(
            f"{message}. The token lacks a scope this request needs: add the scopes listed in the README to "
            "the private app",
            **details,
        )
    if status == 400:
        return HubSpotValidationError(message, **details)
    if status == 404:
        return HubSpotNotFoundError(message, **details)
    if status == 409:
        return HubSpotConflictError(message, **details)
    if status == 429:
        return HubSpotRateLimitError(message, policy_name=body.get("policyName"), **details)
    if status in _TRANSIENT_STATUSES or status >= 500:
        return HubSpotTransientError(message, may_have_applied=status in _MAY_HAVE_APPLIED_STATUSES, **details)
    return HubSpotError(message, **details)


class HubSpotResource(ConfigurableResource):
    """HubSpot CRM API access for one account, configured from the environment.

    The token is a private-app access token; it is sent only in the Authorization header and never
    logged. Use `base_url` to point callsync at the local HubSpot stand-in.
    """

    access_token: str = Field(description="HubSpot private-app access token (set from HUBSPOT_ACCESS_TOKEN).")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="HubSpot API base URL.")
    timeout_seconds: float = Field(default=30.0, description="Timeout of each HTTP request, in seconds.")
    max_retries: int = Field(default=4, description="Retries of one request after a 429, 5xx or network failure.")
    backoff_initial_seconds: float = Field(default=1.0, description="First retry delay; doubles each retry.")
    backoff_max_seconds: float = Field(default=30.0, description="Maximum delay between two retries.")
    requests_per_ten_seconds: int = Field(
        default=100,
        description="Client-side cap on non-search requests per 10 s: 100 (Free, Starter), 190 (Professional, "
        "Enterprise) or 250 (with the API limit increase).",
    )
    searches_per_second: int = Field(
        default=4,
        description="Client-side cap on search requests per second; HubSpot allows 5 per account (older docs: 4).",
    )

    _client: HubSpotClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._client = self.create_client()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def create_client(self) -> HubSpotClient:
        return HubSpotClient(
            access_token=self.access_token,
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            requests_per_ten_seconds=self.requests_per_ten_seconds,
            searches_per_second=self.searches_per_second,
            logger=get_dagster_logger(),
        )

    @property
    def client(self) -> HubSpotClient:
        if self._client is None:
            self._client = self.create_client()
        return self._client

    @contextmanager
    def open_client(self) -> Iterator[HubSpotClient]:
        """Yield a client that is closed afterwards, for code outside a run (scripts, tests)."""
        client = self.create_client()
        try:
            yield client
        finally:
            client.close()
