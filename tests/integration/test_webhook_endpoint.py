"""The webhook endpoint: signature and size checks before anything is parsed or written, the inbox
recording each notice once, dead letters, routing per realm, and retries when the database is down
(F33, F34, B14, B19, A10)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import requests
from sqlmodel import select

from crm_qbo_plugin.store.db import make_engine, session
from crm_qbo_plugin.store.tables import Connection
from tests.support.connected import connect_directly
from tests.support.inbound import TENANT, inbound_env
from tests.support.sandbox_qbo import create_company
from tests.support.webhook_posts import WEBHOOK_PATH, cloud_event, legacy_body, post_signed


@pytest.fixture
def env(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, webhook_format="cloudevents") as env:
        yield env


def _queued(env) -> int:
    return len(env.state.queue)


@pytest.mark.parametrize("signature", ["", "not-base64!", base64.b64encode(b"x" * 32).decode()])
def test_missing_or_wrong_signatures_are_refused_with_nothing_written(env, signature):
    body = legacy_body(env.realm, [("Customer", "1", "Create", "2025-01-01T00:00:00Z")])
    answer = post_signed(env, body, signature=signature)
    assert answer.status_code == 401
    assert env.inbox() == [] and _queued(env) == 0


def test_a_signature_for_a_reserialised_body_is_refused(env):
    body = legacy_body(env.realm, [("Customer", "1", "Create", "2025-01-01T00:00:00Z")])
    from qbo_sandbox.webhooks import sign
    from tests.support.sandbox_qbo import VERIFIER

    signed_for = json.dumps(body, indent=2).encode()  # same JSON, other bytes
    raw = json.dumps(body).encode()
    answer = requests.post(env.plugin_url + WEBHOOK_PATH, data=raw,
                           headers={"intuit-signature": sign(signed_for, VERIFIER)}, timeout=10)
    assert answer.status_code == 401
    assert env.inbox() == []


def test_an_oversized_body_is_refused_before_it_is_read(env):
    huge = b"[" + b" " * (20 * 1024 * 1024) + b"]"
    answer = post_signed(env, huge)
    assert answer.status_code == 413
    assert env.inbox() == [] and _queued(env) == 0


def test_sandbox_webhooks_are_signed_recorded_once_and_set_last_webhook_at(env):
    with env.qbo() as qbo:
        qbo.create("Customer", {"DisplayName": "Webhook Person"})
    assert env.deliver() == {"delivered": 1, "failed": 0, "pending": 0}
    (notice,) = env.inbox()
    assert (notice["status"], notice["source"], notice["deliveries"], notice["tenant_id"]) == ("pending", "webhook", 1, TENANT)
    assert notice["event_id"] and notice["change_stamp"].startswith("ce:")
    assert _queued(env) == 1
    with session(env.state.engine) as db:
        connection = db.exec(select(Connection).where(Connection.tenant_id == TENANT)).one()
    assert connection.last_webhook_at is not None
    assert (datetime.now(UTC) - connection.last_webhook_at).total_seconds() < 60


def test_duplicate_delivery_and_a_later_replay_are_counted_not_reapplied(env):
    """B14: the same CloudEvent delivered twice, then the stored batch replayed an hour later."""
    with env.qbo() as qbo:
        qbo.create("Customer", {"DisplayName": "Replay Person"})
    env.sync()
    (delivery,) = requests.get(f"{env.sandbox_url}/_sandbox/webhooks", timeout=10).json()["deliveries"]
    raw = delivery["body"].encode()
    for _ in range(2):
        answer = post_signed(env, raw, signature=delivery["signature"])
        assert answer.status_code == 200
        assert answer.json() == {"recorded": 0, "duplicates": 1, "dead": 0}
    env.work()
    (notice,) = env.inbox()
    assert (notice["status"], notice["deliveries"]) == ("applied", 3)
    assert len(env.host.writes) == 1 and len(env.host.contacts) == 1


def test_unknown_types_realms_and_legacy_bodies_are_dead_lettered_and_do_not_block(env):
    """B19: an unknown entity type, a mixed-realm batch with an unknown realm, then a legacy body."""
    with env.qbo() as qbo:
        customer = qbo.create("Customer", {"DisplayName": "Known Realm"})
    batch = [
        cloud_event(env.realm, "employee", "11", "created", "e-1"),
        cloud_event("999999", "customer", "5", "created", "e-2"),
        cloud_event(env.realm, "customer", customer["Id"], "created", "e-3"),
        cloud_event(env.realm, "salesreceipt", "150", "updated", "e-4"),
    ]
    answer = post_signed(env, batch)
    assert answer.status_code == 200 and answer.json() == {"recorded": 4, "duplicates": 0, "dead": 2}
    legacy = legacy_body(env.realm, [("Customer", customer["Id"], "Update", "2025-09-08T20:52:31.657Z")])
    assert post_signed(env, legacy).status_code == 200
    assert post_signed(env, b"this is not json").status_code == 200
    env.work()
    got = {(n["entity"], n["realm_id"], n["status"]): n["reason"] for n in env.inbox()}
    assert got == {
        ("employee", env.realm, "dead"): "unknown QBO entity type 'qbo.employee.created.v1'",
        ("Customer", "999999", "dead"): "no location is connected to this QuickBooks company",
        ("Customer", env.realm, "applied"): "contact created",
        ("SalesReceipt", env.realm, "skipped"): "QBO SalesReceipt changes are not synced to the CRM",
        ("Customer", env.realm, "skipped"): "the contact already holds this version",
        ("?", "unknown", "dead"): "webhook body is not JSON",
    }
    assert len(env.host.contacts) == 1


def test_one_delivery_spanning_two_companies_reaches_each_tenant_only(env):
    """F34: a CloudEvents delivery mixing realms; each change lands in its own tenant."""
    other_realm = create_company(env.sandbox_url, limits={"enabled": False})
    connect_directly(env.app, "loc-2", env.sandbox_url, other_realm)
    with env.qbo() as qbo:
        qbo.create("Customer", {"DisplayName": "Tenant One Customer"})
    from crm_qbo_plugin.runtime.clients import client_for

    with env.app.app_context(), client_for(env.state, other_realm) as qbo:
        qbo.create("Customer", {"DisplayName": "Tenant Two Customer"})
    env.sync()
    deliveries = requests.get(f"{env.sandbox_url}/_sandbox/webhooks", timeout=10).json()["deliveries"]
    assert [sorted(d["realms"]) for d in deliveries] == [sorted([env.realm, other_realm])]
    names = {(tenant, c.first_name + " " + c.last_name) for (tenant, _id), c in env.host.contacts.items()}
    assert names == {("loc-1", "Tenant One Customer"), ("loc-2", "Tenant Two Customer")}


def test_database_down_answers_503_and_the_retry_is_applied_once(env):
    """A10: the endpoint refuses while the database is unavailable; Intuit's retry then lands once."""
    with env.qbo() as qbo:
        qbo.create("Customer", {"DisplayName": "Retry Person"})
    state = env.state
    healthy = state.engine
    state.engine = make_engine("sqlite:////nonexistent-dir/db-is-down.db")
    try:
        assert env.deliver() == {"delivered": 0, "failed": 1, "pending": 1}
    finally:
        state.engine.dispose()
        state.engine = healthy
    assert env.inbox() == []
    assert env.deliver(force=True) == {"delivered": 1, "failed": 0, "pending": 0}
    env.work()
    (notice,) = env.inbox()
    assert (notice["status"], notice["deliveries"]) == ("applied", 1)
    assert len(env.host.writes) == 1
