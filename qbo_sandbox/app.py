"""The sandbox Flask app: Intuit's ``/v3/company/{realmId}/...`` REST API plus the control API.

Request pipeline for ``/v3``: injected faults -> latency -> authentication (401) -> throttle
(429) -> ``requestid`` replay -> the operation -> stats. Each answer is serialized once and
sent as one bytes body with an ``intuit_tid`` header.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import Flask, Response, request

from qbo_sandbox import errors
from qbo_sandbox.batch import run_batch
from qbo_sandbox.clock import Clock
from qbo_sandbox.companies import CompanyStore
from qbo_sandbox.faults import FaultInjector
from qbo_sandbox.oauth import OAuthServer
from qbo_sandbox.operations import ENTITY_PATHS, SALES_FORMS, Operations
from qbo_sandbox.pdf import transaction_pdf
from qbo_sandbox.query import QueryError
from qbo_sandbox.stats import Stats
from qbo_sandbox.throttle import Throttle
from qbo_sandbox.timefmt import envelope_time
from qbo_sandbox.webhooks import WebhookDispatcher

JSON = "application/json;charset=UTF-8"
MAX_REQUEST_ID = 50
MAX_BATCH_REQUEST_ID = 36


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """QBO-style JSON: Decimal money as JSON numbers."""
    return json.dumps(payload, default=_default, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Sandbox:
    """Everything one sandbox instance holds; kept in ``app.extensions["qbo_sandbox"]``."""

    clock: Clock
    oauth: OAuthServer
    webhooks: WebhookDispatcher
    companies: CompanyStore
    throttle: Throttle
    faults: FaultInjector
    stats: Stats
    latency_ms: float = 0.0
    started: float = field(default_factory=time.time)

    def reset(self) -> None:
        """Forget every company, token, app, webhook, fault and counter."""
        self.companies.reset()
        self.throttle.reset()
        self.faults.clear()
        self.stats.reset()
        self.oauth.reset()
        self.webhooks.reset()

    def notify(self, realm_id: str, entity: str, entity_id: str, operation: str,
               when: datetime, data: dict[str, Any] | None) -> None:
        self.webhooks.record_change(realm_id, entity, entity_id, operation, when, data)


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = JSON
    endpoint: str = "unknown"


def create_app(
    clock: Clock | None = None,
    *,
    latency_ms: float = 0.0,
    clock_speed: float | None = None,
    webhook_autostart: bool = False,
    control_token: str | None = None,
) -> Flask:
    """A fresh sandbox. No background thread runs unless ``webhook_autostart`` is true. With a
    ``control_token``, ``/_sandbox/`` requests must carry it (``X-Sandbox-Token``)."""
    from qbo_sandbox.control import control_guard, make_control_blueprint
    from qbo_sandbox.home import make_home_blueprint

    clock = clock or Clock()
    if clock_speed is not None:
        clock.set_speed(clock_speed)
    companies = CompanyStore()
    oauth = OAuthServer(clock, companies.pairs)
    sandbox = Sandbox(
        clock=clock,
        oauth=oauth,
        webhooks=WebhookDispatcher(clock, oauth),
        companies=companies,
        throttle=Throttle(clock),
        faults=FaultInjector(),
        stats=Stats(),
        latency_ms=float(latency_ms),
    )
    app = Flask("qbo_sandbox")
    app.extensions["qbo_sandbox"] = sandbox
    if control_token:
        app.before_request(control_guard(control_token))
    app.register_blueprint(oauth.blueprint)
    app.register_blueprint(sandbox.webhooks.blueprint)
    app.register_blueprint(make_control_blueprint(sandbox))
    app.register_blueprint(make_home_blueprint(sandbox))

    @app.before_request
    def _inject_fault() -> Response | None:
        path = request.path
        if path.startswith("/_sandbox"):
            return None
        realm = None
        if path.startswith("/v3/company/"):
            realm = path.split("/")[3] if path.count("/") >= 3 else None
        rule = sandbox.faults.match(request.method, path, realm)
        if rule is None:
            return None
        sandbox.stats.fault_injected()
        if rule.latency_ms > 0:
            time.sleep(rule.latency_ms / 1000.0)
        if rule.reset:
            _drop_connection()
            return Response(b"", 502)
        if rule.status is not None:
            sandbox.stats.record(realm, "fault", rule.status)
            return Response(rule.body, rule.status, content_type=rule.content_type,
                            headers={"intuit_tid": _tid()})
        return None

    @app.route("/v3/company/<realm_id>/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def v3(realm_id: str, rest: str) -> Response:
        answer = _handle(sandbox, realm_id, rest)
        sandbox.stats.record(realm_id, answer.endpoint, answer.status)
        return Response(answer.body, answer.status, content_type=answer.content_type,
                        headers={"intuit_tid": _tid()})

    if webhook_autostart:
        sandbox.webhooks.start()
    return app


def get_sandbox(app: Flask) -> Sandbox:
    sandbox: Sandbox = app.extensions["qbo_sandbox"]
    return sandbox


def _tid() -> str:
    return f"1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"


def _drop_connection() -> None:
    """Close the client socket without an answer (werkzeug servers expose it)."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _handle(sandbox: Sandbox, realm_id: str, rest: str) -> _Answer:
    now = sandbox.clock.now()
    reason = sandbox.oauth.authenticate(request.headers.get("Authorization"), realm_id)
    if reason is not None:
        body = errors.auth_failed_body(int(now.timestamp() * 1000), reason)
        return _Answer(401, dumps(body), endpoint="auth")
    company = sandbox.companies.get(realm_id)
    if company is None:
        return _Answer(403, dumps(errors.forbidden_body(int(now.timestamp() * 1000))),
                       endpoint="auth")
    is_batch = rest.rstrip("/") == "batch"
    if not sandbox.throttle.enter(realm_id, company.limits, is_batch):
        xml = errors.throttle_xml(envelope_time(now, company.tz))
        return _Answer(429, xml, "application/xml", endpoint="throttled")
    try:
        if sandbox.latency_ms > 0:  # QBO's processing time: the request counts as in flight
            time.sleep(sandbox.latency_ms / 1000.0)
        return _dispatch(sandbox, company, rest, now)
    finally:
        sandbox.throttle.leave(realm_id)


def _envelope(payload: dict[str, Any], now: datetime, tz: Any) -> bytes:
    payload["time"] = envelope_time(now, tz)
    return dumps(payload)


def _dispatch(sandbox: Sandbox, company: Any, rest: str, now: datetime) -> _Answer:
    method = request.method
    segments = [s for s in rest.split("/") if s]
    args = request.args
    tz = company.tz
    endpoint = "/".join(segments[:1]) or "root"
    request_id = args.get("requestid")
    replay_key = None
    if method == "POST" and request_id is not None and segments[:1] != ["query"]:
        limit = MAX_BATCH_REQUEST_ID if segments == ["batch"] else MAX_REQUEST_ID
        if not request_id or len(request_id) > limit:
            err = errors.too_long("requestid", limit, len(request_id))
            return _Answer(400, _envelope({"Fault": err.fault()}, now, tz), endpoint=endpoint)
        replay_key = request_id
        stored = company.replays.get(replay_key)
        if stored is not None:
            status, body, content_type = stored
            return _Answer(status, body, content_type, endpoint="replay")
    include = tuple(p.strip().lower() for p in args.get("include", "").split(",") if p.strip())
    ops = Operations(company, now, sandbox.notify,
                     allow_duplicate_doc_number="allowduplicatedocnum" in include)
    try:
        answer = _route(sandbox, ops, method, segments, include, now, rest)
    except QueryError as exc:
        err = errors.QBOError(exc.code, exc.message, exc.detail)
        answer = _Answer(err.status, _envelope({"Fault": err.fault()}, now, tz), endpoint=endpoint)
    except errors.QBOError as exc:
        answer = _Answer(exc.status, _envelope({"Fault": exc.fault()}, now, tz), endpoint=endpoint)
    ops.flush()
    if replay_key is not None and answer.status == 200:
        company.replays[replay_key] = (answer.status, answer.body, answer.content_type)
    return answer


def _json_body() -> Any:
    raw = request.get_data(cache=False)
    if not raw:
        return {}
    try:
        return json.loads(raw, parse_float=Decimal)
    except UnicodeDecodeError:
        raise errors.unsupported(
            "Operation Could not parse the request: the payload is not valid UTF-8 is not supported."
        ) from None
    except ValueError as exc:
        raise errors.bad_request_body(f"Request body is not valid JSON: {exc}") from None


def _route(sandbox: Sandbox, ops: Operations, method: str, segments: list[str],
           include: tuple[str, ...], now: datetime, rest: str) -> _Answer:
    company = ops.company
    tz = company.tz
    args = request.args
    first = segments[0].lower() if segments else ""
    not_found = errors.unsupported(
        f"Operation Could not find resource for relative : /v3/company/{company.realm_id}/{rest} "
        f"of full path: {request.url} is not supported."
    )
    wrong_method = errors.unsupported(
        f"Operation No resource method found for {method}, return 405 with Allow header "
        "is not supported."
    )
    if first == "query" and len(segments) == 1:
        if method == "GET":
            text = args.get("query", "")
        elif method == "POST":
            try:
                text = request.get_data(cache=False).decode("utf-8")
            except UnicodeDecodeError:
                raise errors.unsupported("Operation query with a non UTF-8 body is not supported.") from None
        else:
            raise wrong_method
        found = ops.query(text)
        return _Answer(200, _envelope({"QueryResponse": found}, now, tz), endpoint="query")
    if first == "cdc" and len(segments) == 1:
        if method != "GET":
            raise wrong_method
        result = ops.cdc(args.get("entities"), args.get("changedSince"))
        return _Answer(200, _envelope({"CDCResponse": [{"QueryResponse": result}]}, now, tz),
                       endpoint="cdc")
    if first == "batch" and len(segments) == 1:
        if method != "POST":
            raise wrong_method
        items = run_batch(ops, _json_body(), lambda entity: sandbox.faults.batch_item_fault(entity, company.realm_id))
        return _Answer(200, _envelope({"BatchItemResponse": items}, now, tz), endpoint="batch")
    entity = ENTITY_PATHS.get(first)
    if entity is None:
        raise not_found
    name = entity.lower()
    if entity == "Preferences" and len(segments) == 1:
        if method == "GET":
            data = ops.read("Preferences", "1")
            return _Answer(200, _envelope({"Preferences": data}, now, tz), endpoint="preferences.read")
        if method == "POST":
            data = ops.update_preferences(_json_body())
            return _Answer(200, _envelope({"Preferences": data}, now, tz),
                           endpoint="preferences.update")
        raise wrong_method
    if len(segments) == 1:
        if method != "POST":
            raise wrong_method
        body = _json_body()
        operation = args.get("operation", "")
        data = ops.write(entity, body, operation, include)
        label = operation.lower() or ("update" if isinstance(body, dict) and body.get("Id") else "create")
        if label == "update" and "void" in include:
            label = "void"
        return _Answer(200, _envelope({entity: data}, now, tz), endpoint=f"{name}.{label}")
    if len(segments) == 2:
        if method != "GET":
            raise wrong_method
        data = ops.read(entity, segments[1])
        return _Answer(200, _envelope({entity: data}, now, tz), endpoint=f"{name}.read")
    if len(segments) == 3 and segments[2] == "pdf" and entity in SALES_FORMS:
        if method != "GET":
            raise wrong_method
        data = ops.read(entity, segments[1])
        return _Answer(200, transaction_pdf(entity, data, company.name), "application/pdf",
                       endpoint=f"{name}.pdf")
    if len(segments) == 3 and segments[2] == "send" and entity in SALES_FORMS:
        if method != "POST":
            raise wrong_method
        data = ops.send(entity, segments[1], args.get("sendTo"))
        return _Answer(200, _envelope({entity: data}, now, tz), endpoint=f"{name}.send")
    raise not_found
