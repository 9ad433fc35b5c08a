"""Xero errors, grouped by what the caller must do next (the same rule as ``qbo/errors.py``).

* ``ReconnectRequired``: the refresh token is dead (``invalid_grant``), or Xero refuses the
  connection (401 after a refresh, 403 for a tenant the app is no longer connected to): a person
  must reconnect the organisation.
* ``ThrottledError``: a 429 (or our limiter's daily budget spent, ``status`` None); wait
  ``retry_after`` seconds. ``problem`` is Xero's ``X-Rate-Limit-Problem`` (``minute``, ``day``,
  ``concurrent``, ``appminute``); a ``day`` breach can mean hours.
* ``TransientError``: 5xx, timeouts, connection errors; retry later with the same Idempotency-Key.
* ``NotFoundError``: the id is unknown to this organisation.
* ``ValidationError``: Xero's ``ValidationErrors`` for the element(s); fix the data, never retry
  as is.

No error ever holds a token: messages come from parsed fields of Xero's answers only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "NotFoundError",
    "ReconnectRequired",
    "ThrottledError",
    "TransientError",
    "UnexpectedResponseError",
    "ValidationError",
    "XeroError",
    "error_from_response",
    "validation_messages",
]

_MAX_TEXT = 500


class XeroError(Exception):
    """Base of every error the Xero client raises; ``retryable`` tells a job runner what to do."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.message} (status={self.status})"


class ReconnectRequired(XeroError):
    """A person must reconnect the Xero organisation; never retried."""


class ThrottledError(XeroError):
    """Xero answered 429 (or the limiter spent the day): wait ``retry_after`` seconds;
    ``problem`` says which limit."""

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, retry_after: float | None, problem: str | None,
                 status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.problem = problem


class TransientError(XeroError):
    """Xero or the network failed for now (5xx, timeout, reset): retry later."""

    retryable: ClassVar[bool] = True


class NotFoundError(XeroError):
    """404: the id is not in this organisation."""


class UnexpectedResponseError(XeroError):
    """A 2xx answer that is not the JSON envelope Xero sends."""


class ValidationError(XeroError):
    """400: Xero refused the element(s); ``messages`` are its ``ValidationErrors`` texts."""

    def __init__(self, messages: Sequence[str], *, status: int | None = 400,
                 elements: Sequence[dict[str, Any]] = ()) -> None:
        self.messages = tuple(messages)
        self.elements = tuple(elements)
        super().__init__("; ".join(self.messages) or "Xero refused the request", status=status)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def validation_messages(element: Any) -> list[str]:
    """The ``ValidationErrors[].Message`` texts of one element."""
    errors = element.get("ValidationErrors") if isinstance(element, dict) else None
    if not isinstance(errors, list):
        return []
    return [_cut(str(e["Message"])) for e in errors if isinstance(e, dict) and e.get("Message")]


def error_from_response(status: int, body: bytes, headers: Any) -> XeroError:
    """The error for a non-2xx Accounting API answer (401 is handled by the caller first)."""
    if status == 429:
        raw = headers.get("Retry-After")
        try:
            retry_after = float(raw) if raw else None
        except ValueError:
            retry_after = None
        problem = headers.get("X-Rate-Limit-Problem") or None
        return ThrottledError(f"Xero rate limit reached ({problem or 'unknown'})",
                              retry_after=retry_after, problem=problem)
    if status == 404:
        return NotFoundError("Xero has no such record", status=404)
    if status in (401, 403):
        detail = _problem_detail(body)
        return ReconnectRequired(f"Xero refused the connection: {detail}", status=status)
    if status == 400:
        try:
            payload = json.loads(body)
        except ValueError:
            return ValidationError([_cut(body.decode("utf-8", "replace").strip())])
        elements = payload.get("Elements") if isinstance(payload, dict) else None
        messages: list[str] = []
        for element in elements if isinstance(elements, list) else []:
            messages.extend(validation_messages(element))
        if not messages and isinstance(payload, dict) and payload.get("Message"):
            messages = [_cut(str(payload["Message"]))]
        return ValidationError(messages, elements=[e for e in elements or [] if isinstance(e, dict)])
    if status >= 500:
        return TransientError("Xero is unavailable", status=status)
    return UnexpectedResponseError(f"Xero answered HTTP {status}", status=status)


def _problem_detail(body: bytes) -> str:
    """The ``Detail`` of Xero's problem JSON (``TokenExpired: …``, ``AuthenticationUnsuccessful``)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return "no detail"
    detail = payload.get("Detail") if isinstance(payload, dict) else None
    return _cut(str(detail)) if detail else "no detail"
