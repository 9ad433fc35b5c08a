"""The sandbox Flask app: Xero's identity endpoints, ``/connections``, the Accounting API under
``/api.xro/2.0/`` and the ``/_sandbox/`` control API.

Accounting pipeline: injected fault -> Bearer token (401) -> ``xero-tenant-id`` (403) -> scope
(401) -> rate limits (429) -> latency -> ``Idempotency-Key`` replay -> the operation. Every
answer carries Xero's remaining-count headers once the limiter has seen the request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Flask, Response, request

from xero_sandbox.accounting import Accounting, ElementError, NotFound, boolean, guid
from xero_sandbox.clock import Clock
from xero_sandbox.faults import FaultInjector
from xero_sandbox.identity import AccessToken, AuthError, IdentityServer, problem
from xero_sandbox.limits import RateLimiter
from xero_sandbox.orgs import Org, OrgStore, Record
from xero_sandbox.query import QueryError, compile_where, sort_records
from xero_sandbox.stats import Stats
from xero_sandbox.timefmt import ms_json, parse_if_modified_since
from xero_sandbox.webhooks import WebhookSender
from xero_sandbox.xmlbody import XMLBodyError, parse_xml

JSON = "application/json; charset=utf-8"
IDEMPOTENCY_SECONDS = 360
MAX_IDEMPOTENCY_KEY = 128
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
NOT_FOUND_TEXT = b"The resource you're looking for cannot be found"

# collection (lower case) -> (JSON name, read scopes, write scopes)
_T = "accounting.transactions"
_S = "accounting.settings"
COLLECTIONS: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {
    "contacts": ("Contacts", frozenset({"accounting.contacts", "accounting.contacts.read"}),
                 frozenset({"accounting.contacts"})),
    "invoices": ("Invoices", frozenset({_T, _T + ".read", "accounting.invoices",
                                        "accounting.invoices.read"}),
                 frozenset({_T, "accounting.invoices"})),
    "payments": ("Payments", frozenset({_T, _T + ".read", "accounting.payments",
                                        "accounting.payments.read"}),
                 frozenset({_T, "accounting.payments"})),
    "items": ("Items", frozenset({_S, _S + ".read", "accounting.invoices",
                                  "accounting.invoices.read"}),
              frozenset({_S, "accounting.invoices"})),
    "organisation": ("Organisations", frozenset({_S, _S + ".read"}), frozenset()),
    "accounts": ("Accounts", frozenset({_S, _S + ".read"}), frozenset()),
    "taxrates": ("TaxRates", frozenset({_S, _S + ".read"}), frozenset()),
    "currencies": ("Currencies", frozenset({_S, _S + ".read"}), frozenset()),
}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, default=_default, separators=(",", ":"),
                      ensure_ascii=False).encode()


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    endpoint: str = "unknown"

    def response(self) -> Response:
        return Response(self.body, self.status, content_type=self.content_type,
                        headers=self.headers)


@dataclass
class _Replay:
    fingerprint: str
    answer: _Answer
    expires_at: datetime


@dataclass
class Sandbox:
    """Everything one sandbox holds; ``app.extensions["xero_sandbox"]``."""

    clock: Clock
    identity: IdentityServer
    webhooks: WebhookSender
    orgs: OrgStore
    limiter: RateLimiter
    faults: FaultInjector
    stats: Stats
    control_token: str | None = None
    latency_ms: float = 0.0
    replays: dict[tuple[str, str], _Replay] = field(default_factory=dict)

    def reset(self) -> None:
        self.orgs.reset()
        self.limiter.reset()
        self.faults.clear()
        self.stats.reset()
        self.identity.reset()
        self.webhooks.reset()
        self.replays.clear()


def create_app(clock: Clock | None = None, *, latency_ms: float = 0.0,
               control_token: str | None = None, webhook_autostart: bool = False,
               aggregation_seconds: float = 1.0) -> Flask:
    """A fresh sandbox. No background thread runs unless ``webhook_autostart``."""
    from xero_sandbox.control import make_control_blueprint

    clock = clock or Clock()
    orgs = OrgStore()
    identity = IdentityServer(clock, orgs.pairs)
    sandbox = Sandbox(clock=clock, identity=identity,
                      webhooks=WebhookSender(clock, identity,
                                             aggregation_seconds=aggregation_seconds),
                      orgs=orgs, limiter=RateLimiter(clock), faults=FaultInjector(),
                      stats=Stats(), control_token=control_token, latency_ms=float(latency_ms))
    app = Flask("xero_sandbox")
    app.extensions["xero_sandbox"] = sandbox
    app.register_blueprint(identity.blueprint)
    app.register_blueprint(make_control_blueprint(sandbox))

    @app.before_request
    def _inject_fault() -> Response | None:
        path = request.path
        if path.startswith("/_sandbox"):
            return None
        tenant = request.headers.get("xero-tenant-id")
        rule = sandbox.faults.match(request.method, path, tenant)
        if rule is None:
            return None
        sandbox.stats.fault_injected()
        if rule.latency_ms > 0:
            time.sleep(rule.latency_ms / 1000.0)
        if rule.reset:
            _drop_connection()
            return Response(b"", 502)
        if rule.status is not None:
            sandbox.stats.record(tenant, f"fault.{rule.kind}", rule.status)
            return Response(rule.body, rule.status, content_type=rule.content_type,
                            headers=rule.headers)
        return None

    for prefix in ("/connections", "/Connections"):
        app.add_url_rule(prefix, f"connections{prefix}", identity.list_connections,
                         methods=["GET"])
        app.add_url_rule(f"{prefix}/<connection_id>", f"connection{prefix}",
                         identity.delete_connection, methods=["DELETE"])

    @app.route("/api.xro/2.0/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def accounting(rest: str) -> Response:
        answer = _handle(sandbox, rest)
        sandbox.stats.record(request.headers.get("xero-tenant-id"), answer.endpoint, answer.status)
        answer.headers.setdefault("Xero-Correlation-Id", str(uuid.uuid4()))
        return answer.response()

    if webhook_autostart:
        sandbox.webhooks.start()
    return app


def get_sandbox(app: Flask) -> Sandbox:
    sandbox: Sandbox = app.extensions["xero_sandbox"]
    return sandbox


def _drop_connection() -> None:
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _problem(status: int, detail: str, endpoint: str) -> _Answer:
    return _Answer(status, dumps(problem(status, detail)), endpoint=endpoint)


def validation(messages: list[str], elements: list[dict[str, Any]] | None = None) -> bytes:
    body: dict[str, Any] = {"ErrorNumber": 10, "Type": "ValidationException",
                            "Message": "A validation exception occurred"}
    body["Elements"] = elements if elements is not None else [
        {"ValidationErrors": [{"Message": m} for m in messages]}]
    return dumps(body)


def _handle(sandbox: Sandbox, rest: str) -> _Answer:
    segments = [s for s in rest.split("/") if s]
    name = segments[0].lower() if segments else ""
    if name == "organisations":  # pyxero's path; Xero answers it like /Organisation
        name = segments[0] = "organisation"
    spec = COLLECTIONS.get(name)
    endpoint = f"{name or 'root'}.{request.method.lower()}"
    try:
        token = sandbox.identity.authenticate(request.headers.get("Authorization"))
    except AuthError as exc:
        return _problem(401, exc.detail, "auth")
    org = sandbox.orgs.get(request.headers.get("xero-tenant-id"))
    if org is None or not sandbox.identity.is_connected(token.client_id, org.tenant_id):
        return _problem(403, "AuthenticationUnsuccessful", "auth")
    if spec is not None:
        needed = spec[1] if request.method == "GET" else spec[2]
        if not token.scopes & needed:
            return _problem(401, "AuthorizationUnsuccessful", "auth")
    admission = sandbox.limiter.enter(token.client_id, org.tenant_id, org.limits)
    if not admission.ok:
        headers = dict(admission.headers, **{"Retry-After": str(admission.retry_after),
                                              "X-Rate-Limit-Problem": admission.problem or ""})
        return _Answer(429, b"", "text/plain", headers, endpoint="throttled")
    try:
        if sandbox.latency_ms > 0:
            time.sleep(sandbox.latency_ms / 1000.0)
        answer = _idempotent(sandbox, token, org, segments, spec, endpoint)
    finally:
        sandbox.limiter.leave(org.tenant_id)
    answer.headers.update(admission.headers)
    return answer


def _idempotent(sandbox: Sandbox, token: AccessToken, org: Org, segments: list[str],
                spec: Any, endpoint: str) -> _Answer:
    key = request.headers.get("Idempotency-Key")
    if key is None or request.method not in ("POST", "PUT"):
        return _dispatch(sandbox, token, org, segments, spec, endpoint)
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        return _Answer(400, validation([f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} "
                                        "characters long"]), endpoint=endpoint)
    body = request.get_data(cache=True)
    fingerprint = hashlib.sha256(b"\0".join([
        request.method.encode(), request.path.lower().encode(),
        request.query_string, org.tenant_id.encode(), body])).hexdigest()
    now = sandbox.clock.now()
    with org.lock:
        stored = sandbox.replays.get((token.client_id, key))
        if stored is not None and stored.expires_at > now:
            if stored.fingerprint != fingerprint:
                return _Answer(400, validation([f"The Idempotency-Key {key} is used with a "
                                                "different request"]), endpoint=endpoint)
            replay = stored.answer
            return _Answer(replay.status, replay.body, replay.content_type, dict(replay.headers),
                           endpoint="replay")
        answer = _dispatch(sandbox, token, org, segments, spec, endpoint)
        if len(sandbox.replays) > 10000:
            for old in [k for k, v in sandbox.replays.items() if v.expires_at <= now]:
                del sandbox.replays[old]
        sandbox.replays[(token.client_id, key)] = _Replay(
            fingerprint, _Answer(answer.status, answer.body, answer.content_type,
                                 dict(answer.headers)),
            now + timedelta(seconds=IDEMPOTENCY_SECONDS))
        return answer


def _envelope(sandbox: Sandbox, token: AccessToken, name: str, rows: list[Any],
              pagination: dict[str, int] | None = None) -> bytes:
    app = sandbox.identity.apps.get(token.client_id)
    body: dict[str, Any] = {"Id": str(uuid.uuid4()), "Status": "OK",
                            "ProviderName": app.name if app else "",
                            "DateTimeUTC": ms_json(sandbox.clock.now()).replace("+0000", "")}
    if pagination is not None:
        body["pagination"] = pagination
    body[name] = rows
    return dumps(body)


def _elements(raw: bytes, name: str) -> list[dict[str, Any]]:
    content_type = (request.content_type or "").lower()
    if "xml" in content_type or raw.lstrip().startswith(b"<"):
        return parse_xml(raw, name)
    try:
        data = json.loads(raw, parse_float=Decimal) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise XMLBodyError(f"The request body is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get(name), list):
        elements = data[name]
    elif isinstance(data, dict):
        elements = [data]
    else:
        elements = data if isinstance(data, list) else [data]
    if not all(isinstance(e, dict) for e in elements):
        raise XMLBodyError(f"Each of the {name} must be an object")
    return elements


def _dispatch(sandbox: Sandbox, token: AccessToken, org: Org, segments: list[str], spec: Any,
              endpoint: str) -> _Answer:
    if spec is None:
        return _Answer(404, NOT_FOUND_TEXT, "text/html; charset=utf-8", endpoint="unknown")
    name = spec[0]
    method = request.method
    api_base = request.host_url.rstrip("/")
    now = sandbox.clock.now()

    def notify(category: str, event: str, resource_id: str, when: datetime) -> None:
        sandbox.webhooks.record(org.tenant_id, category, event, resource_id, when, api_base)

    unitdp = 4 if request.args.get("unitdp") == "4" else 2
    acc = Accounting(org, now, notify, unitdp=unitdp)
    kind = segments[0].lower()
    try:
        if method == "GET":
            with org.lock:
                return _read(sandbox, token, acc, kind, name, segments, endpoint)
        if method == "DELETE":
            if kind == "items" and len(segments) == 2:
                with org.lock:
                    acc.delete_item(segments[1])
                return _Answer(204, b"", endpoint=endpoint)
            return _Answer(405, b"", "text/plain", endpoint=endpoint)
        if kind not in ("contacts", "invoices", "items", "payments") or len(segments) > 2:
            return _Answer(405, b"", "text/plain", endpoint=endpoint)
        raw = request.get_data(cache=True)
        try:
            elements = _elements(raw, name)
        except XMLBodyError as exc:
            return _Answer(400, validation([str(exc)]), endpoint=endpoint)
        if len(segments) == 2:
            if len(elements) != 1:
                return _Answer(400, validation(["Exactly one element is expected"]),
                               endpoint=endpoint)
            if kind == "payments":
                with org.lock:
                    try:
                        row = acc.delete_payment(segments[1], elements[0])
                    except ElementError as exc:
                        return _Answer(400, validation(exc.messages), endpoint=endpoint)
                return _Answer(200, _envelope(sandbox, token, name, [row]),
                               endpoint="payments.delete")
            target = _find(acc, kind, segments[1])
            if target is None:
                raise NotFound(segments[1])
            id_key = {"contacts": "ContactID", "invoices": "InvoiceID", "items": "ItemID"}[kind]
            elements[0][id_key] = target.data[id_key]
        summarize = boolean(request.args.get("summarizeErrors", "true"))
        return _write(sandbox, token, acc, kind, name, elements, method == "PUT", summarize,
                      endpoint)
    except NotFound:
        return _Answer(404, NOT_FOUND_TEXT, "text/html; charset=utf-8", endpoint=endpoint)
    except QueryError as exc:
        body = dumps({"ErrorNumber": 16, "Type": "QueryParseException", "Message": str(exc)})
        return _Answer(400, body, endpoint=endpoint)


def _find(acc: Accounting, kind: str, key: str) -> Record | None:
    org = acc.org
    if kind == "invoices":
        return acc.find_invoice(key)
    gid = guid(key)
    store = {"contacts": org.contacts, "items": org.items, "payments": org.payments}.get(kind, {})
    if gid is not None and gid in store:
        return store[gid]
    if kind == "contacts":
        return next((r for r in org.contacts.values() if r.data.get("ContactNumber") == key), None)
    if kind == "items":
        return next((r for r in org.items.values() if r.data["Code"] == key), None)
    return None


def _write(sandbox: Sandbox, token: AccessToken, acc: Accounting, kind: str, name: str,
           elements: list[dict[str, Any]], create_only: bool, summarize: bool,
           endpoint: str) -> _Answer:
    save = {"contacts": acc.save_contact, "items": acc.save_item, "invoices": acc.save_invoice,
            "payments": lambda e, _c: acc.create_payment(e)}[kind]
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    with acc.org.lock:
        for element in elements:
            try:
                data = save(element, create_only)
                row = acc.invoice_view(data, True) if kind == "invoices" else dict(data)
                if not summarize:
                    row["StatusAttributeString"] = "OK"
                rows.append(row)
            except ElementError as exc:
                echo = _echo(element, kind)
                echo["ValidationErrors"] = [{"Message": m} for m in exc.messages]
                echo["StatusAttributeString"] = "ERROR"
                echo["HasErrors" if kind in ("invoices",) else "HasValidationErrors"] = True
                rows.append(echo)
                failed.append(echo)
    if failed and summarize:
        return _Answer(400, validation([], failed), endpoint=endpoint)
    return _Answer(200, _envelope(sandbox, token, name, rows), endpoint=endpoint)


def _echo(element: dict[str, Any], kind: str) -> dict[str, Any]:
    """The refused element as Xero echoes it (dates in its own format, bad values dropped)."""
    from xero_sandbox.timefmt import ms_json_date, parse_date

    echo = {k: v for k, v in element.items() if not isinstance(v, (bytes, set))}
    for key in ("Date", "DueDate"):
        if key in echo:
            try:
                echo[key] = ms_json_date(parse_date(echo[key]))
            except ValueError:
                del echo[key]
    for key, allowed in (("Status", ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED",
                                     "DELETED")),
                         ("LineAmountTypes", ("Exclusive", "Inclusive", "NoTax")),
                         ("Type", ("ACCREC", "ACCPAY")),
                         ("ContactStatus", ("ACTIVE", "ARCHIVED", "GDPRREQUEST"))):
        if key in echo and echo[key] not in allowed:
            del echo[key]
    if kind == "payments":
        echo.pop("Status", None)
    return echo


def _read(sandbox: Sandbox, token: AccessToken, acc: Accounting, kind: str, name: str,
          segments: list[str], endpoint: str) -> _Answer:
    org = acc.org
    args = request.args
    if kind == "organisation":
        return _Answer(200, _envelope(sandbox, token, name, [org.organisation()]), endpoint=endpoint)
    if kind in ("accounts", "taxrates", "currencies"):
        if kind == "accounts":
            rows = [dict(a) for a in org.accounts]
            if len(segments) == 2:
                rows = [a for a in rows if a["AccountID"] == (guid(segments[1]) or "")]
                if not rows:
                    raise NotFound(segments[1])
        elif kind == "taxrates":
            rows = [dict(r) for r in org.tax_rates]
        else:
            from xero_sandbox.orgs import CURRENCY_NAMES

            rows = [{"Code": c, "Description": CURRENCY_NAMES.get(c, c)} for c in org.currencies]
        if args.get("where"):
            rows = [r for r in rows if compile_where(args["where"])(r)]
        if args.get("order"):
            rows = sort_records(rows, args["order"])
        return _Answer(200, _envelope(sandbox, token, name, rows), endpoint=endpoint)
    store = {"contacts": org.contacts, "items": org.items, "invoices": org.invoices,
             "payments": org.payments}[kind]
    if len(segments) == 2:
        found = _find(acc, kind, segments[1])
        if found is None:
            raise NotFound(segments[1])
        row = acc.invoice_view(found.data, True) if kind == "invoices" else found.data
        return _Answer(200, _envelope(sandbox, token, name, [row]), endpoint=f"{kind}.read")
    records: list[Record] = list(store.values())
    since_header = request.headers.get("If-Modified-Since")
    if since_header:
        try:
            since = parse_if_modified_since(since_header)
        except (ValueError, TypeError):
            since = None
        if since is not None:
            records = [r for r in records if r.updated >= since]
    ids = {guid(i) for i in args.get("IDs", "").split(",") if i.strip()}
    key = {"contacts": "ContactID", "items": "ItemID", "invoices": "InvoiceID",
           "payments": "PaymentID"}[kind]
    if ids:
        records = [r for r in records if r.data[key] in ids]
    if kind == "contacts" and not boolean(args.get("includeArchived", "false")):
        records = [r for r in records if r.data["ContactStatus"] != "ARCHIVED"]
    if kind == "contacts" and args.get("searchTerm"):
        term = args["searchTerm"].lower()
        records = [r for r in records if any(term in str(r.data.get(f, "")).lower() for f in (
            "Name", "FirstName", "LastName", "ContactNumber", "EmailAddress"))]
    if kind == "invoices":
        statuses = {s.strip().upper() for s in args.get("Statuses", "").split(",") if s.strip()}
        numbers = {s.strip() for s in args.get("InvoiceNumbers", "").split(",") if s.strip()}
        contact_ids = {guid(s) for s in args.get("ContactIDs", "").split(",") if s.strip()}
        if statuses:
            records = [r for r in records if r.data["Status"] in statuses]
        if numbers:
            records = [r for r in records if r.data.get("InvoiceNumber") in numbers]
        if contact_ids:
            records = [r for r in records if r.data["Contact"]["ContactID"] in contact_ids]
    rows = [r.data for r in records]
    if args.get("where"):
        predicate = compile_where(args["where"])
        rows = [r for r in rows if predicate(r)]
    if args.get("order"):
        rows = sort_records(rows, args["order"])
    pagination = None
    page_arg = args.get("page")
    if page_arg is not None:
        try:
            page = max(1, int(page_arg))
            size = int(args.get("pageSize", DEFAULT_PAGE_SIZE))
        except ValueError:
            raise QueryError("page and pageSize must be whole numbers") from None
        size = min(max(1, size), MAX_PAGE_SIZE)
        count = len(rows)
        pagination = {"page": page, "pageSize": size, "pageCount": math.ceil(count / size),
                      "itemCount": count}
        rows = rows[(page - 1) * size: page * size]
    if kind == "invoices":
        rows = [acc.invoice_view(r, with_lines=page_arg is not None) for r in rows]
    return _Answer(200, _envelope(sandbox, token, name, rows, pagination), endpoint=endpoint)
