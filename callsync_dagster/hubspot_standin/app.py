"""Starlette app of the HubSpot stand-in: routes, authentication, scopes, rate limits, injected faults, error bodies.

The handlers only parse the request and call StandinState, which implements every rule. Routes under /crm need a
configured bearer token with the route's scopes. Routes under /_standin are the admin API for tests and demos and
need none.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callsync_dagster.hubspot_standin.state import (
    ASSOCIATIONS_PAGE_DEFAULT_LIMIT,
    DEFAULT_CATEGORY_BY_STATUS,
    DEFAULT_SERVER_ERROR_CATEGORY,
    LIST_DEFAULT_LIMIT,
    OWNERS_DEFAULT_LIMIT,
    OWNERS_READ_SCOPE,
    Fault,
    RateLimitDecision,
    ScopeAccess,
    StandinError,
    StandinState,
    association_route_scopes,
    authentication_error,
    new_correlation_id,
    object_route_scopes,
    validation_error,
)

logger = logging.getLogger(__name__)

CORRELATION_ID_HEADER = "X-HubSpot-Correlation-Id"
CRM_PATH_PREFIX = "/crm/"
UNMATCHED_ROUTE = "<unmatched>"
# Category of the error body for an unknown route or method whose status has no category of its own (405).
CATEGORY_FOR_UNKNOWN_ROUTE = "VALIDATION_ERROR"

# Object routes exist under the v3 prefix and under HubSpot's date-versioned prefix (/crm/objects/2026-03/...),
# which takes the same bodies.
OBJECT_ROUTE_PREFIXES = ("/crm/v3/objects", "/crm/objects/{api_version}")

# How long a dropped connection may take to be reported closed by uvicorn before the request fails.
DISCONNECT_WAIT_SECONDS = 5.0

Handler = Callable[[Request, StandinState], Awaitable[Response]]
# Takes a request's path parameters and returns the scopes its token must have.
ScopeRule = Callable[[Mapping[str, Any]], tuple[str, ...]]


# ---------------------------------------------------------------------------------------------------------------
# Request helpers
# ---------------------------------------------------------------------------------------------------------------


def _standin(request: Request) -> StandinState:
    state: StandinState = request.app.state.standin
    return state


def _correlation_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("correlation_id") or new_correlation_id())


def error_response(error: StandinError, correlation_id: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Build HubSpot's error response, correlation id header included, because 500 responses bypass the middleware."""
    all_headers = {**(headers or {}), **error.headers, CORRELATION_ID_HEADER: correlation_id}
    return JSONResponse(error.to_body(correlation_id), status_code=error.status, headers=all_headers)


async def _read_json(request: Request) -> tuple[Any, int]:
    """Return the parsed JSON body and its length in characters, or raise a 400 like HubSpot's for invalid JSON."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise validation_error("Invalid input JSON: the body is not UTF-8.") from None
    if not text.strip():
        raise validation_error("Invalid input JSON: the request body is empty.")
    try:
        return json.loads(text), len(text)
    except json.JSONDecodeError as error:
        raise validation_error(
            f"Invalid input JSON on line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


def _csv_param(request: Request, name: str) -> list[str]:
    """Read a query parameter given as a comma-separated list, repeated, or both."""
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# ---------------------------------------------------------------------------------------------------------------
# The /crm gate: authentication, scopes, rate limits, faults
# ---------------------------------------------------------------------------------------------------------------


def object_scopes(access: ScopeAccess) -> ScopeRule:
    return lambda params: object_route_scopes(params["object_type"], access)


def association_scopes(access: ScopeAccess) -> ScopeRule:
    return lambda params: association_route_scopes(params["from_type"], params["to_type"], access)


def owner_scopes(params: Mapping[str, Any]) -> tuple[str, ...]:
    return (OWNERS_READ_SCOPE,)


class ConnectionDropRequested(Exception):
    """Raised by a /crm endpoint whose fault closes the connection. CorrelationIdMiddleware closes it."""


def crm_endpoint(
    handler: Handler, *, scopes: ScopeRule, search: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a /crm handler with the token check, the scope check, the rate limit and queued faults, in that order.

    A queued fault that matches the request delays it, closes its connection or replaces its response, as
    Fault describes. With apply_request the handler runs first, so the write happens even though the client
    sees the fault.
    """

    async def endpoint(request: Request) -> Response:
        state = _standin(request)
        correlation_id = _correlation_id(request)
        token = _bearer_token(request)
        if not state.is_valid_token(token):
            logger.info("rejected %s %s: missing or unknown bearer token", request.method, request.url.path)
            return error_response(authentication_error(), correlation_id)
        assert token is not None  # is_valid_token rejected None

        # HubSpot documents neither whether a 403 counts against the rate limits nor whether it carries the
        # rate-limit headers. Like the 401, it does neither here.
        scope_error = state.check_scopes(token, scopes(request.path_params))
        if scope_error is not None:
            logger.info("rejected %s %s: missing scopes", request.method, request.url.path)
            return error_response(scope_error, correlation_id)

        decision = state.check_rate_limit(token, search=search)
        if decision.error is not None:
            return error_response(decision.error, correlation_id)

        fault = state.take_fault(request.method, request.url.path)
        if fault is None:
            return await _run_handler(handler, request, state, correlation_id, decision)
        return await _run_with_fault(handler, request, state, correlation_id, decision, fault)

    return endpoint


async def _run_handler(
    handler: Handler,
    request: Request,
    state: StandinState,
    correlation_id: str,
    decision: RateLimitDecision,
) -> Response:
    try:
        response = await handler(request, state)
    except StandinError as error:
        logger.info(
            "responded to %s %s with %d %s: %s (correlation id %s)",
            request.method,
            request.url.path,
            error.status,
            error.category,
            error.message,
            correlation_id,
        )
        response = error_response(error, correlation_id)
    response.headers.update(decision.headers)
    return response


async def _run_with_fault(
    handler: Handler,
    request: Request,
    state: StandinState,
    correlation_id: str,
    decision: RateLimitDecision,
    fault: Fault,
) -> Response:
    """Carry out a request under a fault: run the handler, wait, drop the connection or respond with an error."""
    # Read the body before any delay. Starlette keeps it, so the handler can still parse it after the client
    # has given up and closed the request stream.
    await request.body()
    request_line = f"{request.method} {request.url.path}"
    response: Response | None = None
    if fault.apply_request:
        response = await _run_handler(handler, request, state, correlation_id, decision)
    if fault.delay_seconds > 0:
        logger.info("injected fault: holding %s for %s s", request_line, fault.delay_seconds)
        await _hold(request, fault.delay_seconds)

    applied = " after applying it" if fault.apply_request else ""
    if fault.drop_connection:
        logger.info("injected fault: closing the connection of %s without a response%s", request_line, applied)
        raise ConnectionDropRequested
    if fault.status is not None:
        logger.info("injected fault HTTP %d for %s%s", fault.status, request_line, applied)
        return error_response(fault.to_error(), correlation_id, decision.headers)
    if response is None:
        response = await _run_handler(handler, request, state, correlation_id, decision)
    return response


async def _hold(request: Request, seconds: float) -> None:
    """Wait `seconds`, or until the client closes the connection, whichever comes first.

    Waiting on the event loop lets other requests be served meanwhile. Ending early when the client leaves keeps
    a long delay from carrying the request into a later test that shares the server.
    """
    try:
        async with asyncio.timeout(seconds):
            # The body has been read, so the next ASGI message is http.disconnect, sent when the client leaves.
            while (await request.receive())["type"] != "http.disconnect":
                continue
    except TimeoutError:
        return
    logger.info("client of %s %s closed the connection during an injected delay", request.method, request.url.path)


async def _close_connection(receive: Receive) -> None:
    """Close the client's connection without sending a response, and return once uvicorn has seen it close.

    ASGI has no message for this, so the transport is taken from uvicorn's request cycle, whose bound method
    `receive` is. Waiting for http.disconnect matters: once the cycle is marked disconnected, uvicorn no longer
    sends the 500 it sends for an app that returns without a response. Raises RuntimeError under other servers.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not callable(getattr(transport, "close", None)):
        raise RuntimeError("drop_connection works only under uvicorn, which gives access to the connection.")
    transport.close()
    async with asyncio.timeout(DISCONNECT_WAIT_SECONDS):
        while (await receive())["type"] != "http.disconnect":
            continue


class CorrelationIdMiddleware:
    """Give every request a correlation id, send it as X-HubSpot-Correlation-Id and count /crm requests.

    The id is stored in scope["state"] so that error bodies carry the same id as the header. The middleware also
    closes the connection of a request whose endpoint raised ConnectionDropRequested. It gets uvicorn's own
    `receive`, because Starlette's ServerErrorMiddleware, the only layer outside it, passes `receive` on as it is.
    """

    def __init__(self, app: ASGIApp, standin: StandinState) -> None:
        self.app = app
        self.standin = standin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        correlation_id = new_correlation_id()
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        status_codes: list[int] = []

        async def send_with_correlation_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_codes.append(message["status"])
                MutableHeaders(scope=message)[CORRELATION_ID_HEADER] = correlation_id
            await send(message)

        dropped = False
        try:
            await self.app(scope, receive, send_with_correlation_id)
        except ConnectionDropRequested:
            await _close_connection(receive)
            dropped = True
        finally:
            path: str = scope["path"]
            if path.startswith(CRM_PATH_PREFIX):
                route = scope.get("route")
                template = getattr(route, "path", UNMATCHED_ROUTE)
                status: int | None = None
                if not dropped:
                    status = status_codes[0] if status_codes else 500
                self.standin.record_request(scope["method"], template, status)


# ---------------------------------------------------------------------------------------------------------------
# CRM objects
# ---------------------------------------------------------------------------------------------------------------


async def create_object(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    created = state.create_object(request.path_params["object_type"], body)
    return JSONResponse(created, status_code=201)


async def get_object(request: Request, state: StandinState) -> Response:
    properties = _csv_param(request, "properties")
    found = state.get_object(
        request.path_params["object_type"],
        request.path_params["object_id"],
        properties=properties or None,
        associations=_csv_param(request, "associations"),
        id_property=request.query_params.get("idProperty"),
    )
    return JSONResponse(found)


async def update_object(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    updated = state.update_object(request.path_params["object_type"], request.path_params["object_id"], body)
    return JSONResponse(updated)


async def list_objects(request: Request, state: StandinState) -> Response:
    properties = _csv_param(request, "properties")
    page = state.list_objects(
        request.path_params["object_type"],
        limit=request.query_params.get("limit", LIST_DEFAULT_LIMIT),
        after=request.query_params.get("after"),
        properties=properties or None,
        associations=_csv_param(request, "associations"),
    )
    return JSONResponse(page)


async def batch_create(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    status, result = state.batch_create(request.path_params["object_type"], body)
    return JSONResponse(result, status_code=status)


async def batch_read(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    status, result = state.batch_read(request.path_params["object_type"], body)
    return JSONResponse(result, status_code=status)


async def search(request: Request, state: StandinState) -> Response:
    body, body_chars = await _read_json(request)
    return JSONResponse(state.search(request.path_params["object_type"], body, body_chars))


# ---------------------------------------------------------------------------------------------------------------
# Associations v4 and owners
# ---------------------------------------------------------------------------------------------------------------


async def get_associations(request: Request, state: StandinState) -> Response:
    params = request.path_params
    page = state.get_associations(
        params["from_type"],
        params["from_id"],
        params["to_type"],
        limit=request.query_params.get("limit", ASSOCIATIONS_PAGE_DEFAULT_LIMIT),
        after=request.query_params.get("after"),
    )
    return JSONResponse(page)


async def create_default_association(request: Request, state: StandinState) -> Response:
    params = request.path_params
    result = state.create_default_association(
        params["from_type"], params["from_id"], params["to_type"], params["to_id"]
    )
    return JSONResponse(result)


async def batch_create_associations(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    params = request.path_params
    status, result = state.batch_create_associations(params["from_type"], params["to_type"], body)
    return JSONResponse(result, status_code=status)


async def batch_read_associations(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    params = request.path_params
    status, result = state.batch_read_associations(params["from_type"], params["to_type"], body)
    return JSONResponse(result, status_code=status)


async def list_owners(request: Request, state: StandinState) -> Response:
    page = state.list_owners(
        email=request.query_params.get("email"),
        limit=request.query_params.get("limit", OWNERS_DEFAULT_LIMIT),
        after=request.query_params.get("after"),
    )
    return JSONResponse(page)


async def get_owner(request: Request, state: StandinState) -> Response:
    owner = state.get_owner(request.path_params["owner_id"], id_property=request.query_params.get("idProperty", "id"))
    return JSONResponse(owner)


# ---------------------------------------------------------------------------------------------------------------
# Admin API under /_standin
# ---------------------------------------------------------------------------------------------------------------


def admin_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin handler so that a StandinError becomes HubSpot's error body, as on /crm routes."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, _standin(request))
        except StandinError as error:
            logger.info("admin request %s %s failed: %s", request.method, request.url.path, error.message)
            return error_response(error, _correlation_id(request))

    return endpoint


async def admin_health(request: Request, state: StandinState) -> Response:
    return JSONResponse({"status": "ok"})


async def admin_objects(request: Request, state: StandinState) -> Response:
    properties = _csv_param(request, "properties")
    return JSONResponse({"results": state.dump_objects(request.path_params["object_type"], properties or None)})


async def admin_associations(request: Request, state: StandinState) -> Response:
    return JSONResponse({"results": state.dump_associations()})


async def admin_owners(request: Request, state: StandinState) -> Response:
    return JSONResponse({"results": state.dump_owners()})


async def admin_requests(request: Request, state: StandinState) -> Response:
    return JSONResponse(state.request_counts())


async def admin_reset(request: Request, state: StandinState) -> Response:
    state.reset()
    return JSONResponse({"status": "reset"})


async def admin_seed(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    return JSONResponse(state.seed(body), status_code=201)


async def admin_add_fault(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    if not isinstance(body, dict):
        raise validation_error("Invalid fault: the body must be a JSON object.")
    state.add_fault(body)
    return JSONResponse({"faults": state.pending_faults()}, status_code=201)


async def admin_list_faults(request: Request, state: StandinState) -> Response:
    return JSONResponse({"faults": state.pending_faults()})


async def admin_register_property(request: Request, state: StandinState) -> Response:
    body, _ = await _read_json(request)
    if not isinstance(body, dict):
        raise validation_error("Invalid property: the body must be a JSON object.")
    state.register_property(
        str(body.get("object_type", "")),
        str(body.get("name", "")),
        body.get("value_type", "string"),
        tuple(body.get("options", ())),
    )
    return JSONResponse({"status": "registered"}, status_code=201)


# ---------------------------------------------------------------------------------------------------------------
# Application
# ---------------------------------------------------------------------------------------------------------------


def _routes() -> list[Route]:
    routes: list[Route] = []
    for prefix in OBJECT_ROUTE_PREFIXES:
        # The fixed paths (batch, search) come before {object_id} so that they are never read as an id.
        read, write = object_scopes("read"), object_scopes("write")
        routes += [
            Route(f"{prefix}/{{object_type}}/batch/create", crm_endpoint(batch_create, scopes=write), methods=["POST"]),
            Route(f"{prefix}/{{object_type}}/batch/read", crm_endpoint(batch_read, scopes=read), methods=["POST"]),
            Route(f"{prefix}/{{object_type}}/search", crm_endpoint(search, scopes=read, search=True), methods=["POST"]),
            Route(f"{prefix}/{{object_type}}/{{object_id}}", crm_endpoint(get_object, scopes=read), methods=["GET"]),
            Route(
                f"{prefix}/{{object_type}}/{{object_id}}", crm_endpoint(update_object, scopes=write), methods=["PATCH"]
            ),
            Route(f"{prefix}/{{object_type}}", crm_endpoint(list_objects, scopes=read), methods=["GET"]),
            Route(f"{prefix}/{{object_type}}", crm_endpoint(create_object, scopes=write), methods=["POST"]),
        ]
    routes += [
        Route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}",
            crm_endpoint(create_default_association, scopes=association_scopes("write")),
            methods=["PUT"],
        ),
        Route(
            "/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}",
            crm_endpoint(get_associations, scopes=association_scopes("read")),
            methods=["GET"],
        ),
        Route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/create",
            crm_endpoint(batch_create_associations, scopes=association_scopes("write")),
            methods=["POST"],
        ),
        Route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/read",
            crm_endpoint(batch_read_associations, scopes=association_scopes("read")),
            methods=["POST"],
        ),
        # hubspot-api-client 12.0.0 requests the owner list with a trailing slash.
        Route("/crm/v3/owners", crm_endpoint(list_owners, scopes=owner_scopes), methods=["GET"]),
        Route("/crm/v3/owners/", crm_endpoint(list_owners, scopes=owner_scopes), methods=["GET"]),
        Route("/crm/v3/owners/{owner_id}", crm_endpoint(get_owner, scopes=owner_scopes), methods=["GET"]),
        Route("/_standin/health", admin_endpoint(admin_health), methods=["GET"]),
        Route("/_standin/objects/{object_type}", admin_endpoint(admin_objects), methods=["GET"]),
        Route("/_standin/associations", admin_endpoint(admin_associations), methods=["GET"]),
        Route("/_standin/owners", admin_endpoint(admin_owners), methods=["GET"]),
        Route("/_standin/requests", admin_endpoint(admin_requests), methods=["GET"]),
        Route("/_standin/reset", admin_endpoint(admin_reset), methods=["POST"]),
        Route("/_standin/seed", admin_endpoint(admin_seed), methods=["POST"]),
        Route("/_standin/faults", admin_endpoint(admin_add_fault), methods=["POST"]),
        Route("/_standin/faults", admin_endpoint(admin_list_faults), methods=["GET"]),
        Route("/_standin/properties", admin_endpoint(admin_register_property), methods=["POST"]),
    ]
    return routes


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Return HubSpot's error body for an unknown route or method, in place of Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    category = DEFAULT_CATEGORY_BY_STATUS.get(exc.status_code, CATEGORY_FOR_UNKNOWN_ROUTE)
    message = f"No route for {request.method} {request.url.path}: {exc.detail}"
    error = StandinError(exc.status_code, category, message)
    return error_response(error, _correlation_id(request), dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    correlation_id = _correlation_id(request)
    logger.exception("internal error in %s %s (correlation id %s)", request.method, request.url.path, correlation_id)
    error = StandinError(500, DEFAULT_SERVER_ERROR_CATEGORY, f"Internal error in the HubSpot stand-in: {exc!r}")
    return error_response(error, correlation_id)


def create_app(state: StandinState | None = None, **state_options: Any) -> Starlette:
    """Build the stand-in's ASGI app around a state, or around a new StandinState(**state_options).

    state_options are StandinState's arguments: tokens, rate_limit_per_interval, search_per_second,
    daily_limit, default_phone_region, clock, search_lag_seconds and token_scopes.
    """
    if state is None:
        state = StandinState(**state_options)
    elif state_options:
        raise TypeError("create_app takes either a state or StandinState options, not both.")

    app = Starlette(
        routes=_routes(),
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
    )
    app.state.standin = state
    app.add_middleware(CorrelationIdMiddleware, standin=state)
    return app
