"""Hypothesis against POST /integrations/quickbooks/events: hostile bodies and headers are refused
with a clear 4xx and nothing written — never a 500, never a half-written row."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from crm_qbo_plugin import sign_host_event
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OutboxEvent
from tests.support.plugin_app import HOST_ID, HOST_SECRET

URL = "/integrations/quickbooks/events"
FIELDS = ["tenant", "type", "subject_id", "key", "origin", "source", "occurred_at"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
HEADER_CHARS = st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f")  # what HTTP headers carry
hostile_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=20), json_values, max_size=9)


def count(app) -> int:
    with session(get_state(app).engine) as db:
        return int(db.exec(select(func.count()).select_from(OutboxEvent)).one())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(body=st.binary(max_size=2048) | hostile_objects.map(lambda d: json.dumps(d).encode()), signed=st.booleans())
def test_hostile_bodies_are_refused_cleanly(plugin_app, body, signed):
    client = plugin_app.test_client()
    headers = {"X-CRM-Host": HOST_ID, "Content-Type": "application/json"}
    if signed:
        headers["X-CRM-Signature"] = sign_host_event(body, HOST_SECRET)
    before = count(plugin_app)
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code in (202, 400, 401, 413)
    assert response.is_json and "error" in response.json or response.status_code == 202
    if response.status_code == 202:
        # Only a fully valid event gets in, and then exactly one row (or the same row again).
        assert count(plugin_app) in (before, before + 1)
    else:
        assert count(plugin_app) == before
    if not signed:
        assert response.status_code in (401, 413)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(host=st.text(HEADER_CHARS, max_size=40), signature=st.text(HEADER_CHARS, max_size=80))
def test_forged_headers_never_pass(plugin_app, host, signature):
    body = json.dumps({"tenant": "t", "type": "contact.created", "subject_id": "c", "key": "k",
                       "occurred_at": "2026-01-01T00:00:00+00:00"}).encode()
    response = plugin_app.test_client().post(URL, data=body, headers={"X-CRM-Host": host, "X-CRM-Signature": signature})
    assert response.status_code == 401
    assert count(plugin_app) == 0
