"""Pushes stay single when Redis loses the push locks (a restart or failover while a push waits).

The locks serialise pushes of one record, but they live in Redis: a restart drops them while a
worker is still inside its push (e.g. waiting out QuickBooks' throttling before creating the
customer). Another push of the same invoice then runs alongside. The database is the truth: a
push that resumes re-reads the links before creating anything, so the customer and the invoice
are made once (found in a 20-minute soak: a second customer "Jane Smith (2)" and a second invoice,
the first left orphaned with its payment).
"""

from __future__ import annotations

import threading
import time

import requests

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.store.links import get_link
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    publish,
    qbo_rows,
    state_of,
)


def _wait_until_fired(sandbox_url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        faults = requests.get(f"{sandbox_url}/_sandbox/faults", timeout=5).json()["faults"]
        if faults and faults[0]["fired"] >= 1:
            return
        time.sleep(0.02)
    raise AssertionError("the first push never reached QuickBooks")


def _race(plugin_config, fake_host, sandbox_url, held: str):
    """The first push of inv1 is held at QuickBooks on its `held` create; meanwhile Redis restarts
    (every push lock gone) and an edit of the invoice is pushed to the end. Returns the app, the
    realm, the state, the edit's QBO invoice id and the first push's outcome."""
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    state = state_of(app)
    sent = publish(app, EventType.INVOICE_SENT, "inv1")
    requests.post(f"{sandbox_url}/_sandbox/faults", json={
        "path": f"/v3/company/{realm}/{held}", "method": "POST", "latency_ms": 1500, "times": 1}, timeout=5)
    outcome: list[str] = []

    def first_push() -> None:
        with app.app_context():
            outcome.append(process(state, sent))

    worker = threading.Thread(target=first_push)
    worker.start()
    _wait_until_fired(sandbox_url)
    state.redis.flushdb()  # Redis restarts: every push lock is gone
    edited = publish(app, EventType.INVOICE_UPDATED, "inv1", key="invoice.updated:inv1:v2")
    with app.app_context():
        assert process(state, edited) == "done"  # pushes the customer and the invoice meanwhile
        second = get_link(state, TENANT, "invoice", "inv1").qbo_id
    worker.join(30)
    assert not worker.is_alive()
    return app, realm, state, second, outcome


def test_a_push_that_lost_its_locks_to_a_redis_restart_creates_no_second_customer_or_invoice(
        plugin_config, fake_host, sandbox_url):
    app, realm, state, _second, outcome = _race(plugin_config, fake_host, sandbox_url, "customer")

    customers, invoices = qbo_rows(app, realm, "Customer"), qbo_rows(app, realm, "Invoice")
    assert [c["DisplayName"] for c in customers] == ["Jane Smith"]
    assert len(invoices) == 1
    with app.app_context():
        assert get_link(state, TENANT, "invoice", "inv1").qbo_id == invoices[0]["Id"]
        assert get_link(state, TENANT, "contact", "c1").qbo_id == customers[0]["Id"]
    assert outcome in (["done"], ["skipped"])


def test_two_pushes_that_both_created_the_invoice_leave_one_the_later_copy_is_deleted(
        plugin_config, fake_host, sandbox_url):
    """The same loss while the first push's invoice create waits: both creates reach QuickBooks.
    The link keeps the first one recorded; the other push deletes its own copy (unpaid, seconds
    old) instead of recording it over the link and orphaning the first with its payments."""
    app, realm, state, second, outcome = _race(plugin_config, fake_host, sandbox_url, "invoice")

    invoices = qbo_rows(app, realm, "Invoice")
    assert [i["Id"] for i in invoices] == [second]
    assert len(qbo_rows(app, realm, "Customer")) == 1
    with app.app_context():
        assert get_link(state, TENANT, "invoice", "inv1").qbo_id == second
    assert outcome == ["skipped"]
