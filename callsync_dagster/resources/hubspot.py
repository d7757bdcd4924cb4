"""HubSpot CRM client over httpx, and the Dagster resource that configures it."""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from dagster import ConfigurableResource, InitResourceContext, get_dagster_logger
from pydantic import Field, PrivateAttr

from callsync_dagster.core import hubspot_constants as hs
from callsync_dagster.resources.hubspot_errors import (
    HubSpotAuthError,
    HubSpotConflictError,
    HubSpotError,
    HubSpotNotFoundError,
    HubSpotPausedError,
    HubSpotRateLimitError,
    HubSpotTransientError,
    HubSpotValidationError,
)
from callsync_dagster.resources.rate_limit import (
    LimiterPaused,
    LocalRateLimiter,
    RateLimiter,
    RequestKind,
    SharedRateLimiter,
)

DEFAULT_BASE_URL = "https://api.hubapi.com"

# HubSpot publishes date-versioned paths beside v3/v4 and plans to retire v3/v4 in September 2027; every
# path callsync uses is here so a move is one edit.
PATHS = {
    "search": "/crm/v3/objects/{object_type}/search",
    "batch_create": "/crm/v3/objects/{object_type}/batch/create",
    "batch_read": "/crm/v3/objects/{object_type}/batch/read",
    "associations_batch_read": "/crm/v4/associations/{from_type}/{to_type}/batch/read",
    "associations_batch_create": "/crm/v4/associations/{from_type}/{to_type}/batch/create",
    "owners": "/crm/v3/owners",
}

# Statuses after which a sent POST may already have been applied (HubSpot's error table).
_MAY_HAVE_APPLIED_STATUSES = frozenset({500, 502, 503, 504, 521, 523, 524})
_TRANSIENT_STATUSES = frozenset({423, 500, 502, 503, 504, 521, 523, 524})
# HubSpot's error documentation calls for a wait of at least 2 s after a 423 (record locked during a high-volume sync).
_LOCKED_MIN_WAIT_SECONDS = 2.0
# Retries of a 429: with the backoff doubling up to backoff_max_seconds, about two minutes in all.
_RATE_LIMIT_RETRIES = 8
# A 477 (the account is moving between data centres) without Retry-After is tried again after this long.
_MIGRATING_DEFAULT_WAIT_SECONDS = 3600.0
# A limiter wait longer than this means the account is paused (a daily limit, a 477), not busy: the run
# stops instead of sleeping through it.
_MAX_LIMITER_WAIT_SECONDS = 120.0


@dataclass
class BatchError:
    """One failed input group of a batch response (HubSpot's `errors[]` entry of a 207)."""

    message: str
    category: str | None
    context: dict[str, list[str]]
    correlation_id: str | None

    def ids(self, key: str) -> list[str]:
        return [str(value) for value in self.context.get(key) or []]


@dataclass
class BatchResult:
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BatchError] = field(default_factory=list)


class HubSpotClient:
    """The HubSpot operations callsync needs, batched, rate limited, retried and with typed errors.

    Reads and searches retry 429, 5xx and network failures with bounded exponential backoff. Creates
    retry only failures where HubSpot cannot have applied the request (429, 423, 477 and connection
    errors). Anything else is raised at once, so the caller can look for the objects before creating again.
    """

    def __init__(
        self,
        access_token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = 30.0,
        max_retries: int = 4,
        backoff_initial_seconds: float = 1.0,
        backoff_max_seconds: float = 30.0,
        limiter: RateLimiter | None = None,
        account_time_zone: str = "UTC",
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
        self._limiter: RateLimiter = limiter or LocalRateLimiter(100, 4)
        self._account_time_zone = ZoneInfo(account_time_zone)
        self._log = logger or logging.getLogger(__name__)
        self._owner_ids_by_email: dict[str, str] | None = None
        self.request_count = 0
        self.requests_by_kind: Counter[str] = Counter()
        self.rate_limited_count = 0

    def close(self) -> None:
        self._http.close()
        close_limiter = getattr(self._limiter, "close", None)
        if close_limiter is not None:
            close_limiter()

    # Search

    def search(self, object_type: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one search and follow its pages; return every result.

        HubSpot stops paging at 10,000 results. The bodies callsync sends name at most a few hundred
        objects, so reaching that cap means the filter is broken, and it is reported rather than cut short.
        """
        results: list[dict[str, Any]] = []
        path = PATHS["search"].format(object_type=object_type)
        page = dict(body)
        while True:
            response = self._request("POST", path, json=page, idempotent=True)
            results.extend(response.get("results", []))
            after = ((response.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return results
            if len(results) >= 10_000:
                raise HubSpotError(f"search of {object_type} matched over 10,000 objects; HubSpot returns no more")
            page["after"] = after

    # Batches

    def batch_create(self, object_type: str, inputs: list[dict[str, Any]]) -> BatchResult:
        """Create up to 100 objects in one request.

        Each input should carry an `objectWriteTraceId`: HubSpot then creates the valid inputs and reports
        the others in a 207, each error naming its trace id, instead of failing the whole request.
        """
        path = PATHS["batch_create"].format(object_type=object_type)
        return _batch_result(self._request("POST", path, json={"inputs": inputs}, idempotent=False))

    def batch_read(self, object_type: str, ids: list[str], properties: list[str]) -> BatchResult:
        """Read up to 100 objects by id; missing ones come back as an error listing their ids."""
        path = PATHS["batch_read"].format(object_type=object_type)
        body = {
            "inputs": [{"id": object_id} for object_id in ids],
            "properties": properties,
            "propertiesWithHistory": [],
        }
        return _batch_result(self._request("POST", path, json=body, idempotent=True))

    def batch_read_associations(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, dict[str, set[int]]]:
        """Return, for up to 1,000 objects, each associated object's id with its association type ids."""
        path = PATHS["associations_batch_read"].format(from_type=from_type, to_type=to_type)
        response = self._request(
            "POST", path, json={"inputs": [{"id": object_id} for object_id in ids]}, idempotent=True
        )
        associated: dict[str, dict[str, set[int]]] = {object_id: {} for object_id in ids}
        for result in response.get("results", []):
            targets = associated.setdefault(str((result.get("from") or {}).get("id")), {})
            for target in result.get("to", []):
                type_ids = {int(kind["typeId"]) for kind in target.get("associationTypes", []) if "typeId" in kind}
                targets.setdefault(str(target.get("toObjectId")), set()).update(type_ids)
        return associated

    def batch_create_associations(
        self, from_type: str, to_type: str, type_id: int, pairs: list[tuple[str, str]]
    ) -> list[tuple[str, str, BatchError]]:
        """Associate each (from id, to id) pair with a HubSpot-defined type. A pair already associated is
        expected to stay a single association, as in the stand-in.

        Returns the pairs HubSpot rejected (a 207), each with its error, so the caller fails only those.
        """
        path = PATHS["associations_batch_create"].format(from_type=from_type, to_type=to_type)
        inputs = [
            {
                "from": {"id": from_id},
                "to": {"id": to_id},
                "types": [
                    {"associationCategory": hs.ASSOCIATION_CATEGORY_HUBSPOT_DEFINED, "associationTypeId": type_id}
                ],
            }
            for from_id, to_id in pairs
        ]
        result = _batch_result(self._request("POST", path, json={"inputs": inputs}, idempotent=True))
        rejected = []
        for error in result.errors:
            for from_id, to_id in zip(error.ids("fromObjectId"), error.ids("toObjectId"), strict=False):
                rejected.append((from_id, to_id, error))
        return rejected

    # Owners

    def find_owner_id_by_email(self, email: str) -> str | None:
        """Return the owner `id` (not `userId`) for an email.

        All owners are listed once per client (a run) and kept: owners change rarely, and one listing costs
        fewer requests than a lookup per agent.
        """
        if self._owner_ids_by_email is None:
            self._owner_ids_by_email = self._list_active_owners()
        return self._owner_ids_by_email.get(email.strip().lower())

    def _list_active_owners(self) -> dict[str, str]:
        owners: dict[str, str] = {}
        params: dict[str, Any] = {"limit": 100, "archived": "false"}
        while True:
            response = self._request("GET", PATHS["owners"], params=params, idempotent=True)
            for owner in response.get("results", []):
                email = str(owner.get("email") or "").strip().lower()
                # The Owners API's case handling is not documented: emails are compared lower-cased here.
                if email and not owner.get("archived", False):
                    owners.setdefault(email, str(owner["id"]))
            after = ((response.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return owners
            params["after"] = after

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
        kind: RequestKind = "search" if path.endswith("/search") else "general"
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_limiter(kind, method, path)
            try:
                self.request_count += 1
                self.requests_by_kind[kind] += 1
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
                self._read_rate_limit_headers(response)
                if response.is_success:
                    return response.json() if response.content else {}
                failure = self._error_from_response(response, method, path)
                wait = _retry_after_seconds(response)

            if isinstance(failure, HubSpotPausedError):
                self._limiter.pause((failure.resume_at - datetime.now(UTC)).total_seconds(), str(failure))
                raise failure
            # A 429 storm outlasts a few quick retries; it gets a longer budget, so sessions are not failed for it.
            budget = (
                max(self._max_retries, _RATE_LIMIT_RETRIES)
                if isinstance(failure, HubSpotRateLimitError)
                else self._max_retries
            )
            if not self._should_retry(failure, idempotent) or attempt > budget:
                raise failure
            delay = self._backoff_seconds(attempt, failure, wait)
            if isinstance(failure, HubSpotRateLimitError):
                # Every run sharing the limiter holds back, not only this one.
                self.rate_limited_count += 1
                self._limiter.pause(delay, f"HubSpot answered 429 {failure.policy_name}")
            self._log.warning(
                "HubSpot %s %s failed (%s); retry %d of %d in %.1f s",
                method,
                path,
                failure.message,
                attempt,
                budget,
                delay,
            )
            time.sleep(delay)

    def _wait_for_limiter(self, kind: RequestKind, method: str, path: str) -> None:
        try:
            self._limiter.acquire(kind, max_wait_seconds=_MAX_LIMITER_WAIT_SECONDS)
        except LimiterPaused as paused:
            raise HubSpotPausedError(
                f"requests to this HubSpot account are paused for {paused.seconds:.0f} s: {paused.reason}",
                resume_at=datetime.now(UTC) + timedelta(seconds=paused.seconds),
                method=method,
                path=path,
            ) from None

    def _read_rate_limit_headers(self, response: httpx.Response) -> None:
        """Follow HubSpot's X-HubSpot-RateLimit-* headers when they are present (not on search responses)."""
        max_requests = _int_header(response, "X-HubSpot-RateLimit-Max")
        if max_requests is not None and max_requests > 0:
            self._limiter.lower_general_limit(max_requests)
        if _int_header(response, "X-HubSpot-RateLimit-Daily-Remaining") == 0:
            resume_at = self.next_daily_reset()
            self._limiter.pause((resume_at - datetime.now(UTC)).total_seconds(), "the daily request limit is used up")

    def next_daily_reset(self, now: datetime | None = None) -> datetime:
        """Return the next midnight in the account's time zone, when HubSpot resets its daily limit."""
        local = (now or datetime.now(UTC)).astimezone(self._account_time_zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), self._account_time_zone)
        return midnight.astimezone(UTC)

    def _should_retry(self, failure: HubSpotError, idempotent: bool) -> bool:
        if isinstance(failure, HubSpotRateLimitError):
            return True
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

    def _error_from_response(self, response: httpx.Response, method: str, path: str) -> HubSpotError:
        """Turn a non-2xx response into one of callsync's HubSpot exceptions."""
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}

        status = response.status_code
        message = str(body.get("message") or response.reason_phrase or "no message")
        details: dict[str, Any] = {
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
            scopes = _required_scopes(body)
            needed = f"the scope {', '.join(scopes)}" if scopes else "a scope this request needs"
            return HubSpotAuthError(
                f"{message}. The token lacks {needed}: add it to the private app (the README lists every scope "
                "callsync needs)",
                **details,
            )
        if status == 429 and body.get("policyName") == "DAILY":
            resume_at = self.next_daily_reset()
            return HubSpotPausedError(
                f"{message} The account's daily API limit is used up; callsync resumes after it resets at "
                f"{resume_at.isoformat()}",
                resume_at=resume_at,
                **details,
            )
        if status == 477:
            wait = _retry_after_seconds(response) or _MIGRATING_DEFAULT_WAIT_SECONDS
            return HubSpotPausedError(
                f"{message} The account is moving between HubSpot data centres; callsync resumes in {wait:.0f} s",
                resume_at=datetime.now(UTC) + timedelta(seconds=wait),
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


def _batch_result(response: dict[str, Any]) -> BatchResult:
    errors = [
        BatchError(
            message=str(error.get("message") or "no message"),
            category=error.get("category"),
            context={
                key: list(values) for key, values in (error.get("context") or {}).items() if isinstance(values, list)
            },
            correlation_id=response.get("correlationId") or error.get("correlationId"),
        )
        for error in response.get("errors", [])
    ]
    return BatchResult(results=list(response.get("results", [])), errors=errors)


def _required_scopes(body: dict[str, Any]) -> list[str]:
    """Return the scopes a 403 names, from HubSpot's `errors[].context`."""
    scopes: list[str] = []
    for error in body.get("errors") or []:
        context = (error or {}).get("context") or {}
        for key in ("requiredGranularScopes", "requiredScopes"):
            scopes.extend(str(scope) for scope in context.get(key) or [])
    return list(dict.fromkeys(scopes))


def _int_header(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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
    portal: str = Field(
        default="default",
        description="A name for the HubSpot account (portal): it keys the shared rate limits and the map from "
        "phone number to contact, so give each account its own.",
    )
    account_time_zone: str = Field(
        default="Europe/Stockholm",
        description="The HubSpot account's time zone: its daily API limit resets at midnight there.",
    )
    rate_limit_database_url: str | None = Field(
        default=None,
        description="PostgreSQL holding the rate-limit windows that all runs share (normally "
        "CALLSYNC_DATABASE_URL). Without it each process limits only itself.",
    )
    rate_limit_db_schema: str = Field(default="public", description="Schema of the rate-limit windows.")

    portal_token_variables: dict[str, str] = Field(
        default_factory=dict,
        description="More HubSpot accounts: portal id to the name of the environment variable holding that "
        "portal's token (names, not tokens, so no secret shows in the run config). Sessions whose "
        "hubspot_portal_id is empty or equals `portal` use access_token.",
    )

    _clients: dict[str, HubSpotClient] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._clients = {}

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for client in self._clients.values():
            client.close()
        self._clients = {}

    def portal_of(self, hubspot_portal_id: str | None) -> str:
        """Return the portal a session belongs to: its own id, or the default portal when it has none."""
        return hubspot_portal_id.strip() if hubspot_portal_id and hubspot_portal_id.strip() else self.portal

    def token_for(self, portal: str) -> str | None:
        """Return the portal's token, or None when this deployment has none for it."""
        if portal == self.portal:
            return self.access_token
        variable = self.portal_token_variables.get(portal)
        return (os.environ.get(variable) or None) if variable else None

    def missing_token_reason(self, portal: str) -> str:
        variable = self.portal_token_variables.get(portal)
        if variable:
            return f"no HubSpot token for portal {portal}: the environment variable {variable} is empty or unset"
        return (
            f"no HubSpot token for portal {portal}: add the portal to HUBSPOT_PORTALS and set "
            f"HUBSPOT_ACCESS_TOKEN_{portal}"
        )

    def create_limiter(self, portal: str | None = None, access_token: str | None = None) -> RateLimiter:
        if self.rate_limit_database_url:
            return SharedRateLimiter(
                self.rate_limit_database_url,
                self.rate_limit_db_schema,
                portal or self.portal,
                access_token or self.access_token,
                self.requests_per_ten_seconds,
                self.searches_per_second,
            )
        return LocalRateLimiter(self.requests_per_ten_seconds, self.searches_per_second)

    def create_client(self, portal: str | None = None) -> HubSpotClient:
        """Create a client for `portal` (the default portal when None); raise when it has no token."""
        portal = portal or self.portal
        access_token = self.token_for(portal)
        if access_token is None:
            raise ValueError(self.missing_token_reason(portal))
        return HubSpotClient(
            access_token=access_token,
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            limiter=self.create_limiter(portal, access_token),
            account_time_zone=self.account_time_zone,
            logger=get_dagster_logger(),
        )

    def client_for(self, portal: str) -> HubSpotClient | None:
        """Return this run's client for `portal`, created on first use, or None when it has no token."""
        if portal not in self._clients:
            if self.token_for(portal) is None:
                return None
            self._clients[portal] = self.create_client(portal)
        return self._clients[portal]

    @property
    def client(self) -> HubSpotClient:
        """The default portal's client."""
        client = self.client_for(self.portal)
        assert client is not None, "the default portal always has access_token"
        return client

    def request_totals(self) -> Counter[str]:
        """Sum this run's HubSpot requests over every portal's client: all, searches and 429s."""
        totals: Counter[str] = Counter()
        for client in self._clients.values():
            totals["requests"] += client.request_count
            totals["searches"] += client.requests_by_kind["search"]
            totals["rate_limited"] += client.rate_limited_count
        return totals

    @contextmanager
    def open_client(self) -> Iterator[HubSpotClient]:
        """Yield a client that is closed afterwards, for code outside a run (scripts, tests)."""
        client = self.create_client()
        try:
            yield client
        finally:
            client.close()
