"""POST /integrations/quickbooks/events: signed host events in, everything else refused with
nothing written."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from crm_qbo_plugin import sign_host_event
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OutboxEvent
from tests.support.plugin_app import HOST_ID, HOST_SECRET

URL = "/integrations/quickbooks/events"
GOOD = {
    "tenant": "loc-1",
    "type": "payment.received",
    "subject_id": "pay-9",
    "key": "audit-77",
    "source": "subscription",
    "occurred_at": "2026-11-21T10:00:00+00:00",
}


def post(client, body: bytes, host: str | None = HOST_ID, secret: str | None = HOST_SECRET, signature: str | None = None):
    headers = {"Content-Type": "application/json"}
    if host is not None:
        headers["X-CRM-Host"] = host
    if signature is None and secret is not None:
        signature = sign_host_event(body, secret)
    if signature is not None:
        headers["X-CRM-Signature"] = signature
    return client.post(URL, data=body, headers=headers)


def rows(app) -> list[OutboxEvent]:
    with session(get_state(app).engine) as db:
        return list(db.exec(select(OutboxEvent)))


def test_a_signed_event_is_recorded_once(plugin_app):
    client = plugin_app.test_client()
    body = json.dumps(GOOD).encode()
    first = post(client, body)
    again = post(client, body)
    assert first.status_code == 202 and first.json["created"] is True
    assert again.status_code == 202 and again.json == {"outbox_id": first.json["outbox_id"], "created": False}
    [row] = rows(plugin_app)
    assert (row.tenant_id, row.event_type, row.subject_id, row.source, row.origin) == (
        "loc-1", "payment.received", "pay-9", "subscription", "crm")


@pytest.mark.parametrize(
    "case",
    ["unsigned", "no host", "unknown host", "wrong secret", "tampered body", "signature of other body"],
)
def test_unsigned_or_badly_signed_posts_get_401_and_write_nothing(plugin_app, case):
    client = plugin_app.test_client()
    body = json.dumps(GOOD).encode()
    kwargs: dict = {
        "unsigned": {"signature": None, "secret": None},
        "no host": {"host": None},
        "unknown host": {"host": "someone-else"},
        "wrong secret": {"secret": "not-the-secret-at-all-000"},
        "tampered body": {"signature": sign_host_event(body, HOST_SECRET)},
        "signature of other body": {"signature": sign_host_event(b"{}", HOST_SECRET)},
    }[case]
    sent = body.replace(b"pay-9", b"pay-8") if case == "tampered body" else body
    response = post(client, sent, **kwargs)
    assert response.status_code == 401
    assert "X-CRM-Signature" in response.json["error"]
    assert rows(plugin_app) == []
    assert get_state(plugin_app).queue.count == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**GOOD, "type": "invoice.exploded"}, "type"),
        ({**GOOD, "source": None}, "source"),
        ({k: v for k, v in GOOD.items() if k != "key"}, "key"),
        ({**GOOD, "occurred_at": "2026-11-21T10:00:00"}, "occurred_at"),
        ({**GOOD, "tenant": ""}, "tenant"),
        ({**GOOD, "origin": "martians"}, "origin"),
    ],
)
def test_malformed_events_get_400_naming_the_field_and_write_nothing(plugin_app, payload, field):
    response = post(plugin_app.test_client(), json.dumps(payload).encode())
    assert response.status_code == 400
    assert field in response.json["fields"]
    assert rows(plugin_app) == []


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'"string"'])
def test_signed_bodies_that_are_not_json_objects_get_400(plugin_app, body):
    response = post(plugin_app.test_client(), body)
    assert response.status_code == 400
    assert rows(plugin_app) == []


def test_oversized_bodies_get_413_before_anything_else(plugin_app):
    body = json.dumps({**GOOD, "padding": "x" * 70_000}).encode()
    response = post(plugin_app.test_client(), body)
    assert response.status_code == 413
    assert rows(plugin_app) == []
