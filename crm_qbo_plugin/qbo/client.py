"""The one QuickBooks Online accounting API client.

Every request: goes through the realm's shared limiter, carries ``minorversion``, and is retried
with exponential backoff and full jitter when the failure is transient or a throttle (a 429 also
pauses the realm for every process). Every write carries a ``requestid`` that all retries reuse, so
QBO replays the first answer instead of writing twice. A 401 triggers one token refresh and one
more try. Validation errors are never retried. Bodies go out with ``Decimal`` as exact JSON numbers
and come back with ``Decimal`` amounts. Logs hold method, path, status, fault code and Intuit's
``intuit_tid`` — never tokens, query text or entity bodies.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote as urlquote

import requests

from crm_qbo_plugin.apiclient.retry import RetryPolicy
from crm_qbo_plugin.qbo import jsoncodec
from crm_qbo_plugin.qbo.batch import (
    MAX_BATCH_ITEMS,
    BatchItem,
    BatchResult,
    assign_bids,
    parse_batch_response,
)
from crm_qbo_plugin.qbo.counters import Counters
from crm_qbo_plugin.qbo.errors import (
    AuthenticationError,
    QboError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
    UnexpectedResponseError,
    error_from_fault,
    error_from_response,
    parse_fault,
)
from crm_qbo_plugin.qbo.limiter import Limiter, LocalLimiter
from crm_qbo_plugin.qbo.query import (
    MAX_PAGE_SIZE,
    Where,
    build_count,
    page_statements,
    validate_name,
)
from crm_qbo_plugin.qbo.timestamps import format_changed_since
from crm_qbo_plugin.qbo.tokens import AccessTokenSource

__all__ = ["MINOR_VERSION", "QboClient", "new_request_id"]

logger = logging.getLogger(__name__)

MINOR_VERSION = 75  # the floor since Aug 2025 (qbo-api.md §1.3)
MAX_REQUEST_ID = 50
MAX_BATCH_REQUEST_ID = 36
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
_FROM = re.compile(r"\bFROM\s+([A-Za-z][A-Za-z0-9_]*)", re.IGNORECASE)
_VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt", "BillPayment"})
JSON = "application/json"


def new_request_id() -> str:
    """A fresh ``requestid`` (uuid4 hex, 32 chars: fits the 50-char limit and batch's 36)."""
    return uuid.uuid4().hex


def _check_request_id(request_id: str | None, limit: int = MAX_REQUEST_ID) -> str:
    if request_id is None:
        return new_request_id()
    if not request_id or len(request_id) > limit or not _REQUEST_ID.match(request_id):
        raise ValueError(f"requestid must be 1-{limit} characters of [A-Za-z0-9_.:-]")
    return request_id


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


class QboClient:
    """One realm's view of the QBO API. Not shared between threads (it owns a ``requests.Session``)."""

    def __init__(
        self,
        base_url: str,
        realm_id: str,
        token_manager: AccessTokenSource,
        limiter: Limiter | None = None,
        session: requests.Session | None = None,
        minorversion: int = MINOR_VERSION,
        timeout: float | tuple[float, float] = (10.0, 130.0),
        *,
        retry: RetryPolicy | None = None,
        counters: Counters | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not realm_id or not str(realm_id).isalnum():
            raise ValueError(f"realm_id must be alphanumeric, got {realm_id!r}")
        self.base_url = base_url.rstrip("/")
        self.realm_id = str(realm_id)
        self.minorversion = minorversion
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.counters = counters or Counters()
        self._tokens = token_manager
        self._limiter: Limiter = limiter or LocalLimiter()
        self._session = session or requests.Session()
        self._owns_session = session is None
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"QboClient(base_url={self.base_url!r}, realm_id={self.realm_id!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> QboClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    # Entities

    def read(self, entity: str, qbo_id: str | int) -> dict[str, Any]:
        """``GET /{entity}/{id}``: the entity as QBO holds it now (``NotFoundError`` if gone)."""
        name = validate_name(entity, "entity")
        data = self._call("GET", f"{name.lower()}/{urlquote(str(qbo_id), safe='')}")
        return self._entity(data, name)

    def create(
        self,
        entity: str,
        body: Mapping[str, Any],
        request_id: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create an entity. Pass the ``request_id`` stored with the outbound operation so a retry
        after a lost response returns the first result instead of creating a duplicate."""
        name = validate_name(entity, "entity")
        if "Id" in body:
            raise ValueError("a create must not carry an Id; use update()")
        data = self._call(
            "POST", name.lower(), params={**(params or {}), "requestid": _check_request_id(request_id)},
            body=body,
        )
        return self._entity(data, name)

    def update(
        self,
        entity: str,
        body: Mapping[str, Any],
        request_id: str | None = None,
        sparse: bool = True,
        *,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Update an entity (sparse by default: only the given fields change). ``body`` needs
        ``Id`` and the current ``SyncToken``; an old one raises ``StaleObjectError``."""
        name = validate_name(entity, "entity")
        if "Id" not in body or "SyncToken" not in body:
            raise ValueError("an update needs the entity's Id and current SyncToken")
        payload = {**body, "sparse": sparse}
        data = self._call(
            "POST", name.lower(), params={**(params or {}), "requestid": _check_request_id(request_id)},
            body=payload,
        )
        return self._entity(data, name)

    def delete(
        self, entity: str, qbo_id: str | int, sync_token: str | int, request_id: str | None = None
    ) -> dict[str, Any]:
        """Delete a transaction (``operation=delete``); returns QBO's ``{"status": "Deleted", ...}``.

        Name-list entities (Customer, Item, Account...) cannot be deleted: update ``Active=false``.
        """
        name = validate_name(entity, "entity")
        data = self._call(
            "POST",
            name.lower(),
            params={"operation": "delete", "requestid": _check_request_id(request_id)},
            body={"Id": str(qbo_id), "SyncToken": str(sync_token)},
        )
        return self._entity(data, name)

    def void(
        self, entity: str, qbo_id: str | int, sync_token: str | int, request_id: str | None = None
    ) -> dict[str, Any]:
        """Void a transaction: Invoice uses ``operation=void``; Payment, SalesReceipt and
        BillPayment use a sparse ``operation=update&include=void`` (qbo-api.md §1.8)."""
        name = validate_name(entity, "entity")
        rid = _check_request_id(request_id)
        body: dict[str, Any] = {"Id": str(qbo_id), "SyncToken": str(sync_token)}
        if name == "Invoice":
            params = {"operation": "void", "requestid": rid}
        elif name in _VOID_BY_UPDATE:
            params = {"operation": "update", "include": "void", "requestid": rid}
            body["sparse"] = True
        else:
            raise ValueError(f"QBO cannot void a {name}")
        data = self._call("POST", name.lower(), params=params, body=body)
        return self._entity(data, name)

    def send_invoice(
        self, qbo_id: str | int, to: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """Email an invoice (to ``BillEmail``, or ``to``); returns the updated Invoice."""
        params = {"requestid": _check_request_id(request_id)}
        if to:
            params["sendTo"] = to
        data = self._call(
            "POST",
            f"invoice/{urlquote(str(qbo_id), safe='')}/send",
            params=params,
            raw_body=b"",
            content_type="application/octet-stream",
        )
        return self._entity(data, "Invoice")

    def company_info(self) -> dict[str, Any]:
        """The realm's CompanyInfo (country, name, addresses)."""
        data = self._call("GET", f"companyinfo/{self.realm_id}")
        return self._entity(data, "CompanyInfo")

    def preferences(self) -> dict[str, Any]:
        """The realm's Preferences (home currency, multicurrency, tax, custom transaction numbers)."""
        return self._entity(self._call("GET", "preferences"), "Preferences")

    # ------------------------------------------------------------------------------------------
    # Query and CDC

    def query_response(self, statement: str) -> dict[str, Any]:
        """Run one statement and return QBO's raw ``QueryResponse`` (sent in the POST body, so
        values such as e-mail addresses never appear in URLs or access logs)."""
        data = self._call(
            "POST", "query", raw_body=statement.encode("utf-8"), content_type="application/text"
        )
        response = data.get("QueryResponse")
        if not isinstance(response, dict):
            raise UnexpectedResponseError("the query answer has no QueryResponse")
        return response

    def query(self, statement: str) -> list[dict[str, Any]]:
        """Rows of one statement (one page: QBO's default MAXRESULTS is 100, its maximum 1000)."""
        response = self.query_response(statement)
        match = _FROM.search(statement)
        if match and isinstance(response.get(match.group(1)), list):
            return list(response[match.group(1)])
        for value in response.values():  # tolerate an entity name cased differently
            if isinstance(value, list):
                return list(value)
        return []  # QBO omits the entity key when nothing matched

    def query_pages(
        self,
        entity: str,
        where: Where = None,
        order_by: str | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of ``SELECT * FROM entity [WHERE ...]`` (STARTPOSITION 1, 1001, ...) until a
        short page. ``where`` is ``{field: value}`` (equality) or a list of ``query.Condition``."""
        for statement in page_statements(entity, where, order_by=order_by, page_size=page_size):
            rows = self.query(statement)
            if rows:
                yield rows
            if len(rows) < page_size:
                return

    def query_all(self, entity: str, where: Where = None, order_by: str | None = None) -> list[dict[str, Any]]:
        """Every matching row (all pages) as one list."""
        return [row for page in self.query_pages(entity, where, order_by) for row in page]

    def count(self, entity: str, where: Where = None) -> int:
        """``SELECT COUNT(*)``: how many entities match."""
        return int(self.query_response(build_count(entity, where)).get("totalCount", 0))

    def cdc(self, entities: Iterable[str], changed_since: datetime) -> dict[str, list[dict[str, Any]]]:
        """Changes since ``changed_since`` (aware; ≤ 30 days back) per entity, deleted stubs
        (``{"status": "Deleted", "Id": ...}``) included after live objects. QBO caps a response at
        1000 objects across all entities: a total of 1000 means "split the window", not "done"."""
        names = [validate_name(e, "entity") for e in entities]
        if not names:
            raise ValueError("cdc needs at least one entity")
        data = self._call(
            "GET",
            "cdc",
            params={"entities": ",".join(names), "changedSince": format_changed_since(changed_since)},
        )
        result: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for block in data.get("CDCResponse") or []:
            for response in (block or {}).get("QueryResponse") or []:
                for key, value in (response or {}).items():
                    if isinstance(value, list):
                        result.setdefault(key, []).extend(value)
        return result

    # ------------------------------------------------------------------------------------------
    # Batch

    def batch(self, items: Sequence[BatchItem], request_id: str | None = None) -> list[BatchResult]:
        """Run ``items`` in batches of 30, one ``requestid`` per batch; results in input order.

        Item failures come back as ``BatchResult.error`` (same classes as single calls); only a
        failure of a whole batch request raises.
        """
        chunks = [list(items[i : i + MAX_BATCH_ITEMS]) for i in range(0, len(items), MAX_BATCH_ITEMS)]
        base = _check_request_id(request_id, MAX_BATCH_REQUEST_ID) if request_id else None
        results: list[BatchResult] = []
        for index, chunk in enumerate(chunks):
            bids = assign_bids(chunk)
            if base is None:
                rid = new_request_id()
            elif len(chunks) == 1:
                rid = base
            else:
                suffix = f"-{index}"
                rid = base[: MAX_BATCH_REQUEST_ID - len(suffix)] + suffix
            payload = {"BatchItemRequest": [item.to_request(bid) for item, bid in zip(chunk, bids, strict=True)]}
            data = self._call("POST", "batch", params={"requestid": rid}, body=payload, batch=True)
            results.extend(
                parse_batch_response(data, chunk, bids, status=200, secrets=self._tokens.secrets())
            )
        return results

    # ------------------------------------------------------------------------------------------
    # Transport

    @staticmethod
    def _entity(data: Mapping[str, Any], name: str) -> dict[str, Any]:
        entity = data.get(name)
        if not isinstance(entity, dict):
            # e.g. "Invalid Company Status" answered as a 200 with neither entity nor Fault
            raise UnexpectedResponseError(f"the QBO answer holds no {name}")
        return entity

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        content_type: str = JSON,
        batch: bool = False,
    ) -> dict[str, Any]:
        """Send with retries; return the parsed JSON object or raise a ``QboError``."""
        query = {**(params or {}), "minorversion": str(self.minorversion)}
        data = jsoncodec.dumps(body) if body is not None else raw_body
        started = time.monotonic()
        attempt = 0
        rejected: str | None = None  # the access token a 401 refused, until refreshed
        refreshed = False
        while True:
            attempt += 1
            token: str | None = None
            try:
                if rejected is not None:
                    token = self._tokens.refresh_after_rejection(rejected)
                    rejected = None
                else:
                    token = self._tokens.access_token()
                return self._attempt(method, path, query, data, content_type, batch, token, attempt)
            except ReconnectRequired:
                self.counters.add("errors")
                raise
            except AuthenticationError as exc:
                if refreshed or token is None:
                    self._fail(exc, method, path, attempt)
                    raise
                refreshed = True
                rejected = token
                self.counters.add("auth_refreshes")
                self.counters.add("retries")
                continue
            except QboError as exc:
                delay = self.retry.backoff(attempt)
                elapsed = time.monotonic() - started
                if (
                    not exc.retryable
                    or attempt >= self.retry.max_attempts
                    or elapsed + delay > self.retry.deadline
                ):
                    self._fail(exc, method, path, attempt)
                    raise
                logger.info(
                    "qbo.request.retrying method=%s path=%s error=%s code=%s intuit_tid=%s attempt=%d delay=%.2f",
                    method, self._log_path(path), type(exc).__name__, exc.code, exc.intuit_tid, attempt, delay,
                )
                self.counters.add("retries")
                self._sleep(delay)

    def _fail(self, exc: QboError, method: str, path: str, attempt: int) -> None:
        self.counters.add("errors")
        logger.warning(
            "qbo.request.failed method=%s path=%s status=%s error=%s code=%s intuit_tid=%s attempt=%d",
            method, self._log_path(path), exc.status, type(exc).__name__, exc.code, exc.intuit_tid, attempt,
        )

    def _log_path(self, path: str) -> str:
        return f"/v3/company/{self.realm_id}/{path}"

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        data: bytes | None,
        content_type: str,
        batch: bool,
        token: str,
        attempt: int,
    ) -> dict[str, Any]:
        url = f"{self.base_url}/v3/company/{self.realm_id}/{path}"
        headers = {"Authorization": f"Bearer {token}", "Accept": JSON, "Content-Type": content_type}
        with self._limiter.slot(self.realm_id, batch=batch):
            self.counters.add("requests")
            sent = time.monotonic()
            try:
                response = self._session.request(
                    method, url, params=params, data=data, headers=headers, timeout=self.timeout
                )
            except requests.Timeout:
                raise TransientError("the QBO request timed out") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise TransientError(f"the connection to QBO failed ({type(exc).__name__})") from None
            except requests.RequestException as exc:
                raise QboError(f"the QBO request could not be sent ({type(exc).__name__})") from None
        status = response.status_code
        tid = response.headers.get("intuit_tid")
        logger.debug(
            "qbo.request method=%s path=%s status=%s ms=%d intuit_tid=%s attempt=%d",
            method, self._log_path(path), status, (time.monotonic() - sent) * 1000, tid, attempt,
        )
        secrets = (token, *self._tokens.secrets())
        if status >= 400:
            error = error_from_response(
                status, response.content, intuit_tid=tid, retry_after=_retry_after(response), secrets=secrets
            )
            if status == 429 or isinstance(error, ThrottledError):
                self.counters.add("throttled")
                self._limiter.record_throttle(self.realm_id, _retry_after(response))
            raise error
        try:
            parsed = jsoncodec.loads(response.content)
        except ValueError:
            fault = parse_fault(response.content)
            if fault is not None:
                raise error_from_fault(fault[0], fault[1], status=status, intuit_tid=tid, secrets=secrets) from None
            raise UnexpectedResponseError(
                f"QBO answered HTTP {status} without JSON", status=status, intuit_tid=tid
            ) from None
        if not isinstance(parsed, dict):
            raise UnexpectedResponseError(f"QBO answered HTTP {status} with a non-object", status=status, intuit_tid=tid)
        fault = parse_fault(parsed)
        if fault is not None:  # an HTTP 200 can still carry a Fault
            raise error_from_fault(fault[0], fault[1], status=status, intuit_tid=tid, secrets=secrets)
        return parsed
