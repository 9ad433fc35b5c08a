"""Shared pieces of the outbound (CRM → QBO) integration tests: a connected app on the sandbox,
an in-process worker, direct QBO reads, and a recording proxy in front of the sandbox that can
drop a response after QBO applied the request (lost response) or hold it (to kill the caller)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
import rq
from flask import Flask, Response, request
from rq.serializers import JSONSerializer

from crm_qbo_plugin import Contact, HostEvent, Invoice, InvoiceStatus, LineItem
from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import PluginState, get_state
from tests.support.connected import connect_directly
from tests.support.plugin_app import create_app
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

TENANT = "loc-1"
LATER = datetime.now(UTC) + timedelta(minutes=5)


@dataclass
class Rule:
    pattern: str
    method: str = "POST"
    times: int = 1
    action: str = "drop"  # drop | hold
    hold_seconds: float = 30.0
    answered: threading.Event = field(default_factory=threading.Event)


class RecordingProxy:
    """Forwards every request to the sandbox and records it; rules act AFTER the sandbox answered."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[dict[str, Any]] = []
        self.rules: list[Rule] = []
        self.app = Flask("recording_proxy")
        self.app.add_url_rule("/<path:path>", "forward", self._forward, methods=["GET", "POST"])

    def writes(self, path_part: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith(path_part)]

    def _forward(self, path: str) -> Response:
        raw = request.get_data()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type", "accept")}
        answer = requests.request(request.method, f"{self.target}/{path}", params=list(request.args.items(multi=True)),
                                  data=raw, headers=headers, timeout=60)
        body: Any = raw.decode("utf-8", "replace")
        if request.headers.get("Content-Type", "").startswith("application/json") and raw:
            body = json.loads(raw, parse_float=Decimal)
        self.requests.append({"method": request.method, "path": "/" + path, "args": dict(request.args), "body": body})
        for rule in self.rules:
            if rule.times > 0 and request.method == rule.method and re.search(rule.pattern, "/" + path):
                rule.times -= 1
                rule.answered.set()
                if rule.action == "hold":
                    threading.Event().wait(rule.hold_seconds)
                sock = request.environ.get("werkzeug.socket")
                if isinstance(sock, socket.socket):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return Response(b"", 502)
        return Response(answer.content, answer.status_code, content_type=answer.headers.get("Content-Type"))


def make_app(plugin_config: dict, fake_host: Any, sandbox_url: str, api_url: str | None = None,
             **company: Any) -> tuple[Flask, str]:
    register_app(sandbox_url)
    realm = create_company(sandbox_url, **company)
    config = {**plugin_config, **plugin_overrides(sandbox_url)}
    if api_url:
        config["CRM_QBO_API_BASE_URL"] = api_url
    return create_app(config, fake_host), realm


def connect(app: Flask, sandbox_url: str, realm: str, **settings: Any) -> None:
    settings.setdefault("revenue_account_id", "1")
    with app.app_context():
        connect_directly(app, TENANT, sandbox_url, realm, **settings)


def publish(app: Flask, event_type: EventType, subject: str, key: str | None = None, **extra: Any) -> int:
    from crm_qbo_plugin.outbound.intake import publish as do_publish

    state = get_state(app)
    event = HostEvent(type=event_type, subject_id=subject, key=key or f"{event_type.value}:{subject}", **extra)
    return do_publish(state, TENANT, event).outbox_id


def run_worker(app: Flask) -> None:
    with app.app_context():
        state = get_state(app)
        rq.SimpleWorker([state.queue], connection=state.redis, serializer=JSONSerializer).work(burst=True)


def qbo_rows(app: Flask, realm: str, entity: str) -> list[dict[str, Any]]:
    state = get_state(app)
    with client_for(state, realm) as qbo:
        return qbo.query_all(entity)


def state_of(app: Flask) -> PluginState:
    return get_state(app)


def contact(contact_id: str = "c1", email: str | None = "jane@example.com", first: str = "Jane",
            last: str = "Smith", **extra: Any) -> Contact:
    return Contact(id=contact_id, email=email, first_name=first, last_name=last, **extra)


def invoice(invoice_id: str = "inv1", contact_id: str = "c1", lines: tuple[LineItem, ...] | None = None,
            total: Decimal | None = None, **extra: Any) -> Invoice:
    lines = lines if lines is not None else (LineItem(name="Consulting", quantity=Decimal(2), unit_price=Decimal("50.00")),)
    values: dict[str, Any] = {
        "id": invoice_id, "contact_id": contact_id, "number": None, "status": InvoiceStatus.SENT,
        "currency": "USD", "issue_date": date.today(), "due_date": None, "lines": lines,
        "total": total if total is not None else sum((li.quantity * li.unit_price for li in lines), Decimal(0)),
        "sent_at": datetime.now(UTC),
    }
    values.update(extra)
    return Invoice(**values)


@contextlib.contextmanager
def proxied(sandbox_url: str) -> Iterator[RecordingProxy]:
    from qbo_sandbox.server import BackgroundServer

    proxy = RecordingProxy(sandbox_url)
    server = BackgroundServer(proxy.app).start()
    proxy.url = server.url  # type: ignore[attr-defined]
    try:
        yield proxy
    finally:
        server.stop()
