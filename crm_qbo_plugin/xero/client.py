"""The Accounting API calls the sync needs, with Xero's limits, retries and typed errors.

Every request goes through one path: a limiter slot for the organisation, the ``xero-tenant-id``
header, a bearer token (one refresh after a 401), JSON with exact money, and on a write an
``Idempotency-Key`` derived from the caller's request id and the call, so the retry of a write
whose answer was lost (or whose worker crashed after Xero answered) replays Xero's first answer
instead of creating a second record. Xero keeps a key for 6 minutes (xero-api.md §5): a caller
retrying later must look the record up first (by ``InvoiceNumber`` for invoices).

Retries: transient failures (5xx, timeouts) are retried with backoff under the same key. A 429 is
not slept on here: it sets the organisation's shared cool-down in the limiter and is raised as
``ThrottledError`` (with ``Retry-After`` and ``X-Rate-Limit-Problem``) for the job runner to
reschedule, because a ``day`` breach can last hours.

Arrays: writes of up to 50 elements go with ``summarizeErrors=false``, so Xero answers 200 with
every element and its own ``ValidationErrors`` instead of one 400 that hides which were created.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from crm_qbo_plugin.apiclient import jsoncodec
from crm_qbo_plugin.apiclient.retry import RetryPolicy
from crm_qbo_plugin.apiclient.tokens import AccessTokenSource
from crm_qbo_plugin.xero.errors import (
    NotFoundError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
    UnexpectedResponseError,
    ValidationError,
    error_from_response,
    validation_messages,
)
from crm_qbo_plugin.xero.limiter import Limiter
from crm_qbo_plugin.xero.timestamps import format_if_modified_since

__all__ = ["MAX_ELEMENTS", "AccessTokenSource", "Saved", "XeroClient", "idempotency_key"]

logger = logging.getLogger(__name__)

ACCOUNTING_URL = "https://api.xero.com/api.xro/2.0"
MAX_ELEMENTS = 50  # Xero's recommended ceiling per write
PAGE_SIZE = 100


@dataclass(frozen=True)
class Saved:
    """One element of an array write: Xero's record, or the messages it was refused with."""

    element: dict[str, Any]
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def idempotency_key(request_id: str, method: str, path: str) -> str:
    """The ``Idempotency-Key`` for one write: the same request id and call give the same key."""
    if not request_id:
        raise ValueError("a write needs the caller's request id")
    digest = hashlib.sha256(f"{request_id}\x1f{method}\x1f{path.lower()}".encode()).hexdigest()
    return f"crm-{digest[:60]}"


class XeroClient:
    """One Xero organisation (tenant) through one connection's tokens. Thread-safe."""

    def __init__(
        self,
        tenant_id: str,
        tokens: AccessTokenSource,
        *,
        limiter: Limiter | None = None,
        base_url: str = ACCOUNTING_URL,
        session: requests.Session | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tenant_id = tenant_id
        self._tokens = tokens
        self._limiter = limiter
        self._base = base_url.rstrip("/")
        self._http = session or requests.Session()
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self.day_remaining: int | None = None  # Xero's X-DayLimit-Remaining, last seen

    def close(self) -> None:
        """Release the HTTP connections (a client built per job is closed when the job ends)."""
        self._http.close()

    # -- settings ------------------------------------------------------------------------------

    def organisation(self) -> dict[str, Any]:
        rows = self._list("GET", "/Organisation", "Organisations")
        if not rows:
            raise UnexpectedResponseError("Xero returned no organisation")
        return rows[0]

    def accounts(self, where: str | None = None) -> list[dict[str, Any]]:
        return self._list("GET", "/Accounts", "Accounts", params=_where(where))

    def tax_rates(self) -> list[dict[str, Any]]:
        return self._list("GET", "/TaxRates", "TaxRates")

    def currencies(self) -> list[dict[str, Any]]:
        return self._list("GET", "/Currencies", "Currencies")

    def items(self, where: str | None = None) -> list[dict[str, Any]]:
        return self._list("GET", "/Items", "Items", params=_where(where))

    def save_items(self, items: Sequence[Mapping[str, Any]], *, request_id: str) -> list[Saved]:
        """Create or update items (by ItemID or Code)."""
        return self._save("/Items", "Items", items, request_id, create_only=False)

    # -- contacts ------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        return self._one("/Contacts/" + _segment(contact_id), "Contacts")

    def find_contacts(self, *, email: str | None = None, name: str | None = None,
                      include_archived: bool = False) -> list[dict[str, Any]]:
        """Contacts whose EmailAddress or Name equals the given text (Xero compares without case)."""
        clauses = []
        if email:
            clauses.append(f"EmailAddress=={_quote(email)}")
        if name:
            clauses.append(f"Name=={_quote(name)}")
        if not clauses:
            raise ValueError("find_contacts needs an email or a name")
        params: dict[str, str] = {"where": " OR ".join(clauses)}
        if include_archived:
            params["includeArchived"] = "true"
        return self._list("GET", "/Contacts", "Contacts", params=params)

    def find_contacts_any(self, *, emails: Sequence[str] = (), names: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Active or not, the contacts whose EmailAddress is one of ``emails`` or whose Name is one
        of ``names``: one GET for a backlog's new contacts (up to 50 of each)."""
        clauses = [f"EmailAddress=={_quote(e)}" for e in emails] + [f"Name=={_quote(n)}" for n in names]
        if not 1 <= len(clauses) <= 2 * MAX_ELEMENTS:
            raise ValueError(f"look up 1 to {2 * MAX_ELEMENTS} e-mails and names at a time, not {len(clauses)}")
        return self._list("GET", "/Contacts", "Contacts", params={"where": " OR ".join(clauses)})

    def save_contacts(self, contacts: Sequence[Mapping[str, Any]], *, request_id: str,
                      create_only: bool = False) -> list[Saved]:
        """Create (PUT when ``create_only``) or create-or-update by ContactID (POST)."""
        return self._save("/Contacts", "Contacts", contacts, request_id, create_only)

    def save_contact(self, contact: Mapping[str, Any], *, request_id: str,
                     create_only: bool = False) -> dict[str, Any]:
        return _single(self.save_contacts([contact], request_id=request_id, create_only=create_only))

    # -- invoices ------------------------------------------------------------------------------

    def get_invoice(self, invoice_id_or_number: str) -> dict[str, Any]:
        """One invoice with its lines, by InvoiceID or InvoiceNumber."""
        return self._one("/Invoices/" + _segment(invoice_id_or_number), "Invoices")

    def find_invoice_by_number(self, number: str) -> dict[str, Any] | None:
        """The ACCREC invoice numbered ``number`` (DELETED ones excluded), or None."""
        rows = self._list("GET", "/Invoices", "Invoices", params={
            "where": f'Type=="ACCREC"&&InvoiceNumber=={_quote(number)}&&Status!="DELETED"',
            "page": "1"})
        return rows[0] if rows else None

    def save_invoices(self, invoices: Sequence[Mapping[str, Any]], *, request_id: str,
                      create_only: bool = False) -> list[Saved]:
        """Create or update invoices (update by InvoiceID); unit amounts to 4 decimals."""
        return self._save("/Invoices", "Invoices", invoices, request_id, create_only,
                          extra={"unitdp": "4"})

    def save_invoice(self, invoice: Mapping[str, Any], *, request_id: str,
                     create_only: bool = False) -> dict[str, Any]:
        return _single(self.save_invoices([invoice], request_id=request_id, create_only=create_only))

    def void_invoice(self, invoice_id: str, *, request_id: str) -> dict[str, Any]:
        """AUTHORISED → VOIDED (Xero refuses while a payment is applied)."""
        return self.save_invoice({"InvoiceID": invoice_id, "Status": "VOIDED"}, request_id=request_id)

    # -- payments ------------------------------------------------------------------------------

    def get_payment(self, payment_id: str) -> dict[str, Any]:
        return self._one("/Payments/" + _segment(payment_id), "Payments")

    def payments_by_id(self, payment_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The payments among ``payment_ids`` (up to 50) that Xero's list returns, in one GET."""
        if not 1 <= len(payment_ids) <= MAX_ELEMENTS:
            raise ValueError(f"read 1 to {MAX_ELEMENTS} payments at a time, not {len(payment_ids)}")
        clauses = [f"PaymentID==Guid({_quote(str(uuid.UUID(p)))})" for p in payment_ids]
        return self._list("GET", "/Payments", "Payments", params={"where": " OR ".join(clauses)})

    def create_payments(self, payments: Sequence[Mapping[str, Any]], *, request_id: str) -> list[Saved]:
        """Payments against invoices (``{"Invoice": {...}, "Account": {...}, "Amount", "Date"}``)."""
        return self._save("/Payments", "Payments", payments, request_id, create_only=True)

    def create_payment(self, payment: Mapping[str, Any], *, request_id: str) -> dict[str, Any]:
        return _single(self.create_payments([payment], request_id=request_id))

    def delete_payment(self, payment_id: str, *, request_id: str) -> dict[str, Any]:
        """Payments cannot be edited: delete (only ``Status`` may be sent) and create anew."""
        path = "/Payments/" + _segment(payment_id)
        rows = self._list("POST", path, "Payments", body={"Status": "DELETED"},
                          request_id=request_id)
        return _single([Saved(r, tuple(validation_messages(r))) for r in rows])

    # -- the change poll -------------------------------------------------------------------------

    def changed(self, collection: str, since: datetime, *, page_size: int = PAGE_SIZE,
                where: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of ``collection`` (``Contacts``, ``Invoices``, ``Payments``) modified since
        ``since``, oldest first, with line items; ends after a short page. Archived contacts
        are included (an archive is a change the CRM must see)."""
        if collection not in ("Contacts", "Invoices", "Payments"):
            raise ValueError(f"no change poll for {collection}")
        headers = {"If-Modified-Since": format_if_modified_since(since)}
        page = 1
        while True:
            params = {"order": "UpdatedDateUTC ASC", "page": str(page), "pageSize": str(page_size)}
            if collection == "Contacts":
                params["includeArchived"] = "true"
            params.update(_where(where))
            rows = self._list("GET", f"/{collection}", collection, params=params, headers=headers)
            yield rows
            if len(rows) < page_size:
                return
            page += 1

    # -- the one request path ----------------------------------------------------------------------

    def _one(self, path: str, name: str) -> dict[str, Any]:
        rows = self._list("GET", path, name)
        if not rows:
            raise NotFoundError("Xero has no such record", status=404)
        return rows[0]

    def _save(self, path: str, name: str, elements: Sequence[Mapping[str, Any]], request_id: str,
              create_only: bool, extra: Mapping[str, str] | None = None) -> list[Saved]:
        if not 1 <= len(elements) <= MAX_ELEMENTS:
            raise ValueError(f"write 1 to {MAX_ELEMENTS} {name} at a time, not {len(elements)}")
        params = {"summarizeErrors": "false", **(extra or {})}
        rows = self._list("PUT" if create_only else "POST", path, name,
                          body={name: list(elements)}, params=params, request_id=request_id)
        if len(rows) != len(elements):
            raise UnexpectedResponseError(f"Xero answered {len(rows)} {name} for {len(elements)}")
        return [Saved(row, tuple(validation_messages(row))) for row in rows]

    def _list(self, method: str, path: str, name: str, *, params: Mapping[str, str] | None = None,
              body: Any = None, headers: Mapping[str, str] | None = None,
              request_id: str | None = None) -> list[dict[str, Any]]:
        payload = self.request(method, path, params=params, body=body, headers=headers,
                               request_id=request_id)
        rows = payload.get(name) if isinstance(payload, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UnexpectedResponseError(f"Xero's answer has no {name} list")
        return rows

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                body: Any = None, headers: Mapping[str, str] | None = None,
                request_id: str | None = None) -> Any:
        """Send one call (retried on transient failures) and return the parsed JSON answer."""
        write = method in ("POST", "PUT")
        if write and not request_id:
            raise ValueError("every Xero write needs a request_id (it makes the Idempotency-Key)")
        sent_headers = {"Accept": "application/json", "xero-tenant-id": self.tenant_id,
                        **(headers or {})}
        data = None
        if write:
            sent_headers["Idempotency-Key"] = idempotency_key(str(request_id), method, path)
            sent_headers["Content-Type"] = "application/json"
            data = jsoncodec.dumps(body if body is not None else {})
        url = self._base + path
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, url, params, data, sent_headers)
            except TransientError:
                retry_number = attempt
                if attempt >= self._retry.max_attempts or \
                        time.monotonic() - started > self._retry.deadline:
                    raise
                logger.info("xero.request.retry method=%s path=%s attempt=%s", method, path, attempt)
                self._sleep(self._retry.backoff(retry_number))

    def _attempt(self, method: str, url: str, params: Mapping[str, str] | None, data: bytes | None,
                 headers: dict[str, str]) -> Any:
        token = self._tokens.access_token()
        for refreshed in (False, True):
            response = self._send(method, url, params, data, {**headers,
                                                              "Authorization": f"Bearer {token}"})
            if response.status_code != 401:
                break
            if refreshed:
                raise ReconnectRequired("Xero refused a freshly refreshed token", status=401)
            token = self._tokens.refresh_after_rejection(token)
        self._note_limits(response)
        if 200 <= response.status_code < 300:
            if not response.content:
                return {}
            try:
                payload = jsoncodec.loads(response.content)
            except ValueError:
                raise UnexpectedResponseError("Xero answered with a body that is not JSON",
                                              status=response.status_code) from None
            return payload
        error = error_from_response(response.status_code, response.content, response.headers)
        if isinstance(error, ThrottledError) and self._limiter is not None:
            self._limiter.record_throttle(self.tenant_id, error.retry_after)
        logger.warning("xero.request.failed status=%s error=%s", response.status_code,
                       type(error).__name__)
        raise error

    def _send(self, method: str, url: str, params: Mapping[str, str] | None, data: bytes | None,
              headers: dict[str, str]) -> requests.Response:
        slot = self._limiter.slot(self.tenant_id) if self._limiter is not None else nullcontext()
        with slot:
            try:
                return self._http.request(method, url, params=params, data=data, headers=headers,
                                          timeout=self._timeout)
            except requests.Timeout:
                raise TransientError("Xero did not answer in time") from None
            except requests.RequestException as exc:
                raise TransientError(f"could not reach Xero: {type(exc).__name__}") from None

    def _note_limits(self, response: requests.Response) -> None:
        raw = response.headers.get("X-DayLimit-Remaining")
        if raw is None or not raw.isdigit():
            return
        self.day_remaining = int(raw)
        if self._limiter is not None:
            self._limiter.record_remaining(self.tenant_id, int(raw))


def new_request_id() -> str:
    """A fresh request id for a caller that has none of its own (scripts)."""
    return uuid.uuid4().hex


def _single(saved: list[Saved]) -> dict[str, Any]:
    only = saved[0]
    if only.errors:
        raise ValidationError(only.errors, elements=[only.element])
    return only.element


def _where(where: str | None) -> dict[str, str]:
    return {"where": where} if where else {}


def _quote(text: str) -> str:
    """A where-clause string literal (Xero's filter syntax: double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _segment(value: str) -> str:
    """An id or number as one path segment (no slash may reach the URL path)."""
    text = value.strip()
    if not text or "/" in text or "?" in text or "#" in text:
        raise ValueError(f"not a Xero id or number: {value!r}")
    return quote(text, safe="")
