"""QBO errors, grouped by what the caller must do next (stripe-python's rule, QBO's codes).

Callers pick a reaction from the class alone:

* ``ReconnectRequired``: the refresh token is dead; a person must re-authorise the connection.
* ``AuthenticationError``: QBO rejected the access token even after one refresh.
* ``ThrottledError`` / ``TransientError``: retry later (the client already retried a bounded number
  of times with the same ``requestid``).
* ``StaleObjectError``: re-read the entity for its current SyncToken, then retry the write.
* ``DuplicateNameError`` / ``DuplicateDocNumberError``: match the existing record or rename.
* ``NotFoundError``: the referenced object is gone or inactive; re-link.
* ``BooksClosedError``: the period is closed; a person must reopen it or change the date.
* ``ValidationError``: the payload breaks a business rule; fix the data, never retry as is.

Fault bodies come in three shapes: ``{"Fault": {"Error": [...]}}`` (normal), the lowercase
``{"fault": {"error": [...]}}`` of 401s, and the XML ``IntuitResponse`` QBO sends with 429s even when
JSON was asked for. An HTTP 200 that carries a Fault is an error too. No error ever holds a token:
messages are built from parsed fault fields only, and known secrets are redacted from them.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # noqa: S405 - only parses QBO's own fault bodies
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BooksClosedError",
    "DuplicateDocNumberError",
    "DuplicateNameError",
    "FaultDetail",
    "NotFoundError",
    "QboError",
    "ReconnectRequired",
    "StaleObjectError",
    "ThrottledError",
    "TransientError",
    "UnexpectedResponseError",
    "ValidationError",
    "error_from_fault",
    "error_from_oauth",
    "error_from_response",
    "parse_fault",
    "redact",
]

_MAX_TEXT = 500  # fault texts are short; cap what we keep so an odd body never floods a log line


@dataclass(frozen=True)
class FaultDetail:
    """One ``Error`` element of a QBO Fault."""

    code: str | None
    message: str | None
    detail: str | None
    element: str | None


class QboError(Exception):
    """Base of every error raised by the QBO client.

    ``retryable`` tells a job runner whether the same request may be sent again later.
    ``intuit_tid`` is Intuit's trace id (quote it to Intuit support).
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        detail: str | None = None,
        element: str | None = None,
        status: int | None = None,
        intuit_tid: str | None = None,
        fault_type: str | None = None,
        errors: Sequence[FaultDetail] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail
        self.element = element
        self.status = status
        self.intuit_tid = intuit_tid
        self.fault_type = fault_type
        self.errors: tuple[FaultDetail, ...] = tuple(errors)

    def __str__(self) -> str:
        parts = [self.message]
        if self.detail and self.detail != self.message:
            parts.append(f"- {self.detail}")
        meta = []
        if self.code:
            meta.append(f"code={self.code}")
        if self.element:
            meta.append(f"element={self.element}")
        if self.status is not None:
            meta.append(f"status={self.status}")
        if self.intuit_tid:
            meta.append(f"intuit_tid={self.intuit_tid}")
        if meta:
            parts.append(f"({', '.join(meta)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"status={self.status!r}, intuit_tid={self.intuit_tid!r})"
        )


class AuthenticationError(QboError):
    """QBO rejected the access token (401 / 3200) and one refresh did not help."""


class ReconnectRequired(AuthenticationError):
    """The refresh token was refused (``invalid_grant``): the user must reconnect. Never retried."""


class AuthorizationError(QboError):
    """The connected user may not do this (403 / 120): an admin must fix access in QBO."""


class ThrottledError(QboError):
    """QBO throttled the realm (429 / 3001). Retry after ``retry_after`` seconds (about 60)."""

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class TransientError(QboError):
    """A failure that should pass: 5xx, timeout, connection reset, 6000 "one name at a time"."""

    retryable: ClassVar[bool] = True


class StaleObjectError(QboError):
    """5010: the SyncToken is old. Re-read the entity and apply the change to the fresh copy."""


class DuplicateNameError(QboError):
    """6240: another Customer/Vendor/Employee already uses this DisplayName."""


class DuplicateDocNumberError(QboError):
    """6140: another transaction already uses this DocNumber."""


class NotFoundError(QboError):
    """610 (or HTTP 404): the object, or one it references, is deleted or inactive."""


class BooksClosedError(QboError):
    """6210: the accounting period is closed; the transaction date must change or books reopen."""


class ValidationError(QboError):
    """Any other business-rule or request error (4xx, 2xxx, 6xxx). Fix the data; do not retry."""


class UnexpectedResponseError(QboError):
    """QBO answered without the object it should contain (e.g. 200 without entity or Fault)."""


# ---------------------------------------------------------------------------------------------
# Redaction


_PROBE = 12  # a quoted prefix this long of a secret is treated as the secret


def _scrub(text: str, secret: str) -> str:
    # Servers quote truncated tokens ("Token expired: eyJhbGciOi..."), so a prefix counts too.
    probe = secret[:_PROBE]
    start = text.find(probe)
    while start != -1:
        end = start + len(probe)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + "[redacted]" + text[end:]
        start = text.find(probe, start + len("[redacted]"))
    return text


def redact(text: str | None, secrets: Iterable[str | None]) -> str | None:
    """Replace known secrets (or a quoted prefix of one) and any bearer token with ``[redacted]``."""
    if text is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = _scrub(text, secret)
    return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+", r"\1[redacted]", text)


def _clip(text: Any, secrets: Iterable[str | None]) -> str | None:
    if text is None:
        return None
    value = redact(str(text), secrets)
    if value is not None and len(value) > _MAX_TEXT:
        value = value[:_MAX_TEXT] + "…"
    return value


# ---------------------------------------------------------------------------------------------
# Parsing


def _ci_get(mapping: Mapping[str, Any], key: str) -> Any:
    """Key lookup that tolerates QBO's two casings (``Fault``/``fault``, ``Message``/``message``)."""
    if key in mapping:
        return mapping[key]
    lowered = key.lower()
    for candidate, value in mapping.items():
        if candidate.lower() == lowered:
            return value
    return None


def _fault_from_json(data: Any) -> tuple[str | None, list[FaultDetail]] | None:
    if not isinstance(data, Mapping):
        return None
    fault = _ci_get(data, "Fault")
    if not isinstance(fault, Mapping):
        return None
    raw_errors = _ci_get(fault, "Error")
    if isinstance(raw_errors, Mapping):
        raw_errors = [raw_errors]
    errors: list[FaultDetail] = []
    for raw in raw_errors or []:
        if not isinstance(raw, Mapping):
            continue
        code = _ci_get(raw, "code")
        errors.append(
            FaultDetail(
                code=None if code is None else str(code),
                message=_ci_get(raw, "Message"),
                detail=_ci_get(raw, "Detail"),
                element=_ci_get(raw, "element") or None,
            )
        )
    fault_type = _ci_get(fault, "type")
    return (None if fault_type is None else str(fault_type)), errors


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fault_from_xml(text: str) -> tuple[str | None, list[FaultDetail]] | None:
    try:
        root = ET.fromstring(text)  # noqa: S314 - QBO's own small fault body; expat guards entities
    except ET.ParseError:
        return None
    fault = root if _local(root.tag) == "Fault" else None
    if fault is None:
        fault = next((el for el in root.iter() if _local(el.tag) == "Fault"), None)
    if fault is None:
        return None
    errors: list[FaultDetail] = []
    for err in fault:
        if _local(err.tag) != "Error":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in err}
        errors.append(
            FaultDetail(
                code=err.get("code"),
                message=fields.get("Message"),
                detail=fields.get("Detail"),
                element=err.get("element") or None,
            )
        )
    return fault.get("type"), errors


def parse_fault(body: bytes | str | Mapping[str, Any] | None) -> tuple[str | None, list[FaultDetail]] | None:
    """Return ``(fault_type, errors)`` if ``body`` is a QBO Fault (JSON either casing, or XML)."""
    if body is None:
        return None
    if isinstance(body, Mapping):
        return _fault_from_json(body)
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return _fault_from_json(json.loads(stripped))
        except ValueError:
            return None
    if stripped.startswith("<"):
        return _fault_from_xml(stripped)
    return None


# ---------------------------------------------------------------------------------------------
# Classification

_CONCURRENT_EDIT = re.compile(r"one (name|product or service|\w+) at a time", re.IGNORECASE)
_AUTH_CODES = frozenset({"3200", "100"})
_AUTHZ_CODES = frozenset({"120", "3100"})


def _pick_class(status: int | None, fault_type: str | None, first: FaultDetail | None) -> type[QboError]:
    code = first.code if first else None
    kind = (fault_type or "").lower()
    text = " ".join(filter(None, [first.message if first else None, first.detail if first else None]))
    if status == 429 or code == "3001" or "throttle" in text.lower():
        return ThrottledError
    if status == 401 or code in _AUTH_CODES or kind in ("authentication", "authenticationfault"):
        return AuthenticationError
    if status == 403 or code in _AUTHZ_CODES or kind.startswith("authorizat"):
        return AuthorizationError
    if code == "5010":
        return StaleObjectError
    if code == "6240":
        return DuplicateNameError
    if code == "6140":
        return DuplicateDocNumberError
    if code == "610":
        return NotFoundError
    if code == "6210":
        return BooksClosedError
    if code == "6000" and _CONCURRENT_EDIT.search(text):
        return TransientError
    if (status is not None and status >= 500) or code == "10000" or kind == "systemfault":
        return TransientError
    if status == 404:
        return NotFoundError
    return ValidationError


def error_from_fault(
    fault_type: str | None,
    errors: Sequence[FaultDetail],
    *,
    status: int | None = None,
    intuit_tid: str | None = None,
    secrets: Iterable[str | None] = (),
) -> QboError:
    """Build the right ``QboError`` subclass for a parsed Fault (first Error decides the class)."""
    secrets = tuple(secrets)
    first = errors[0] if errors else None
    cls = _pick_class(status, fault_type, first)
    message = _clip(first.message, secrets) if first and first.message else None
    if not message:
        message = f"QBO request failed with HTTP {status}" if status else "QBO returned a Fault"
    kwargs: dict[str, Any] = {
        "code": first.code if first else None,
        "detail": _clip(first.detail, secrets) if first else None,
        "element": _clip(first.element, secrets) if first else None,
        "status": status,
        "intuit_tid": intuit_tid,
        "fault_type": fault_type,
        "errors": [
            FaultDetail(e.code, _clip(e.message, secrets), _clip(e.detail, secrets), _clip(e.element, secrets))
            for e in errors
        ],
    }
    return cls(message, **kwargs)


def error_from_response(
    status: int,
    body: bytes | str | None,
    *,
    intuit_tid: str | None = None,
    retry_after: float | None = None,
    secrets: Iterable[str | None] = (),
) -> QboError:
    """Classify a failed HTTP response from the accounting API (never echoes the raw body)."""
    parsed = parse_fault(body)
    if parsed is not None:
        error = error_from_fault(parsed[0], parsed[1], status=status, intuit_tid=intuit_tid, secrets=secrets)
    else:
        cls = _pick_class(status, None, None)
        error = cls(f"QBO request failed with HTTP {status}", status=status, intuit_tid=intuit_tid)
    if isinstance(error, ThrottledError):
        error.retry_after = retry_after
    return error


def error_from_oauth(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    *,
    intuit_tid: str | None = None,
    secrets: Iterable[str | None] = (),
) -> QboError:
    """Classify a failed token-endpoint response: ``invalid_grant`` means reconnect, never retry."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    code = description = None
    if isinstance(data, Mapping):
        code = data.get("error")
        description = data.get("error_description")
    secrets = tuple(secrets)
    kwargs: dict[str, Any] = {
        "code": None if code is None else _clip(code, secrets),
        "detail": _clip(description, secrets),
        "status": status,
        "intuit_tid": intuit_tid,
    }
    if code == "invalid_grant":
        return ReconnectRequired(
            "QuickBooks refused the refresh token; the connection must be re-authorised", **kwargs
        )
    if status == 429:
        return ThrottledError("The QuickBooks token endpoint is throttling", **kwargs)
    if status >= 500:
        return TransientError(f"The QuickBooks token endpoint failed with HTTP {status}", **kwargs)
    return AuthenticationError(
        f"The QuickBooks token endpoint refused the refresh (HTTP {status}, {code or 'no error code'})",
        **kwargs,
    )
