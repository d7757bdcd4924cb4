"""The small set of exceptions every HubSpot failure becomes, each carrying HubSpot's evidence."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_EXISTING_ID_PATTERN = re.compile(r"Existing ID:\s*(\d+)")


def existing_id_in(message: str) -> str | None:
    """Return the id HubSpot names in a conflict message ("Contact already exists. Existing ID: 123")."""
    match = _EXISTING_ID_PATTERN.search(message)
    return match.group(1) if match else None


class HubSpotError(Exception):
    """A HubSpot request failed; `status` is None when no HTTP response arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        category: str | None = None,
        correlation_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method else "HubSpot request"
        evidence = ", ".join(
            part
            for part in (
                f"HTTP {self.status}" if self.status else None,
                f"category {self.category}" if self.category else None,
                f"correlation id {self.correlation_id}" if self.correlation_id else None,
            )
            if part
        )
        return f"{where} failed: {self.message}" + (f" ({evidence})" if evidence else "")


class HubSpotAuthError(HubSpotError):
    """401 (token invalid or expired) or 403 (token lacks a scope): no session can sync until fixed."""


class HubSpotValidationError(HubSpotError):
    """400: HubSpot rejected the request's content; retrying the same request cannot succeed."""


class HubSpotNotFoundError(HubSpotError):
    """404: the object does not exist (or was deleted)."""


class HubSpotConflictError(HubSpotError):
    """409: the object exists already; `existing_id` is parsed from HubSpot's message when present."""

    @property
    def existing_id(self) -> str | None:
        return existing_id_in(self.message)


class HubSpotRateLimitError(HubSpotError):
    """429 that retries did not clear, or a DAILY limit, which must not be retried before the reset."""

    def __init__(self, message: str, *, policy_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.policy_name = policy_name


class HubSpotPausedError(HubSpotError):
    """The account takes no requests until `resume_at`: its daily limit is used up (429 DAILY) or it is
    moving between data centres (477). No session is at fault, so the run stops and defers them all."""

    def __init__(self, message: str, *, resume_at: datetime, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.resume_at = resume_at


class HubSpotTransientError(HubSpotError):
    """5xx, 423 or a network failure that retries did not clear.

    `may_have_applied` is True when a write may have reached HubSpot (a timeout, 502, 504 or 524 after the
    request was sent), so the caller must look for the object before creating it again.
    """

    def __init__(self, message: str, *, may_have_applied: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.may_have_applied = may_have_applied
