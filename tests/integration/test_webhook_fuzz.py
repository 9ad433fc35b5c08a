"""Hypothesis against POST /integrations/quickbooks/webhooks: malformed, oversized and hostile
bodies, signed and unsigned. Unsigned or badly signed → 401 (oversized → 413) and nothing written;
authentic but unprocessable → 200 with the notice dead-lettered (never a 500, never a half-written
row, and nothing queued for it)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import Connection, InboxNotice
from crm_qbo_plugin.web.qbo_webhooks import MAX_BODY_BYTES
from qbo_sandbox.webhooks import sign
from tests.support.plugin_app import plugin_settings

URL = "/integrations/quickbooks/webhooks"
VERIFIER = "test-verifier"  # plugin_settings' verifier token

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
entity = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["Customer", "Invoice", "Payment", "Employee", "", "Invoice\x00"]) | st.text(max_size=20),
    "id": st.text(max_size=20) | st.integers(), "operation": st.sampled_from(["Create", "Update", "Delete", "Merge", "Void"]) | json_values,
    "lastUpdated": st.sampled_from(["2026-01-01T00:00:00Z", "2015-10-05T14:42:19-0700", "2026-01-01T00:00:00", "x"]) | json_values,
    "deletedId": json_values})
legacy = st.builds(lambda notes: {"eventNotifications": notes}, st.lists(st.fixed_dictionaries({}, optional={
    "realmId": st.sampled_from(["123", "9341", ""]) | json_values,
    "dataChangeEvent": st.fixed_dictionaries({}, optional={"entities": st.lists(entity, max_size=4) | json_values})}), max_size=3) | json_values)
cloud = st.lists(st.fixed_dictionaries({}, optional={
    "specversion": st.just("1.0") | json_values, "id": st.text(max_size=30) | json_values,
    "type": st.sampled_from(["qbo.customer.created.v1", "qbo.invoice.updated.v1", "qbo.employee.created.v1", "qbo..v1", "x"]) | json_values,
    "time": st.sampled_from(["2026-01-01T00:00:00Z", "nope"]) | json_values, "intuitentityid": st.text(max_size=10) | json_values,
    "intuitaccountid": st.sampled_from(["123", "9341"]) | json_values, "data": json_values}), max_size=4)
bodies = (st.binary(max_size=1024)
          | legacy.map(lambda d: json.dumps(d).encode()) | cloud.map(lambda d: json.dumps(d).encode())
          | json_values.map(lambda d: json.dumps(d).encode()))


def rows(app) -> tuple[int, int]:
    with get_state(app).engine.connect() as conn:
        notices = conn.execute(sa.select(sa.func.count()).select_from(InboxNotice)).scalar_one()
        touched = conn.execute(sa.select(sa.func.count()).select_from(Connection).where(
            Connection.last_webhook_at.is_not(None))).scalar_one()  # type: ignore[union-attr]
    return int(notices), int(touched)


def queued(app) -> int:
    return len(get_state(app).queue)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(body=bodies, signed=st.booleans())
@example(body=b"[" * 100_000, signed=True)  # deep nesting: json raised RecursionError, a 500
@example(body=b'{"eventNotifications":' + b"[" * 50_000, signed=True)
@example(body=b"\xff\xfe{}", signed=True)
@example(body=b"", signed=True)
def test_hostile_bodies_are_refused_or_dead_lettered_never_half_written(plugin_app, body, signed):
    client = plugin_app.test_client()
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["intuit-signature"] = sign(body, VERIFIER)
    before, jobs = rows(plugin_app), queued(plugin_app)
    response = client.post(URL, data=body, headers=headers)
    assert response.is_json
    if not signed:
        assert response.status_code == 401
        assert rows(plugin_app) == before and queued(plugin_app) == jobs
        return
    # Authentic: acknowledged, every notice recorded whole (no connected realm here, so each one is
    # a dead letter or a notice for an unknown realm) and nothing queued for a realm nobody holds.
    assert response.status_code == 200, response.get_data()
    answer = response.json
    assert set(answer) == {"recorded", "duplicates", "dead"}
    assert rows(plugin_app)[0] == before[0] + answer["recorded"]
    with get_state(plugin_app).engine.connect() as conn:
        statuses = set(conn.execute(sa.select(InboxNotice.status)).scalars())  # type: ignore[call-overload]
    assert statuses <= {"dead", "pending"}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(signature=st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=90))
def test_forged_signatures_never_pass(plugin_app, signature):
    body = json.dumps({"eventNotifications": [{"realmId": "123", "dataChangeEvent": {"entities": [
        {"name": "Customer", "id": "1", "operation": "Create", "lastUpdated": "2026-01-01T00:00:00Z"}]}}]}).encode()
    if signature.strip() == sign(body, VERIFIER):
        return
    response = plugin_app.test_client().post(URL, data=body, headers={"intuit-signature": signature})
    assert response.status_code == 401
    assert rows(plugin_app) == (0, 0)


def test_a_body_just_over_the_cap_is_413_even_when_signed_and_nothing_is_written(plugin_app):
    body = b'{"eventNotifications":[' + b" " * MAX_BODY_BYTES + b"]}"
    response = plugin_app.test_client().post(URL, data=body, headers={"intuit-signature": sign(body, VERIFIER)})
    assert response.status_code == 413
    assert rows(plugin_app) == (0, 0)


def test_the_verifier_used_here_is_the_plugins(plugin_config):
    assert plugin_settings("sqlite://", "redis://x")["CRM_QBO_WEBHOOK_VERIFIER_TOKEN"] == VERIFIER
