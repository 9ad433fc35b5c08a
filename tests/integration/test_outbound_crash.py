"""Crash safety of the push (reliability.md scenarios A1, A2).

A1: a worker process is SIGKILLed right after QBO created the invoice, before the link was saved
(a proxy in front of the sandbox forwards the create, lets QBO answer, then holds the answer while
the test kills the worker). Recovery runs the same outbox row again: exactly one QBO invoice.
A2: the connection drops after QBO created the customer (the proxy forwards, then closes the socket
without answering): the retry replays by requestid, or finds the customer by e-mail: one customer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import requests

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.types import utcnow
from tests.integration.outbound_helpers import (
    TENANT,
    Rule,
    connect,
    contact,
    invoice,
    make_app,
    proxied,
    publish,
    qbo_rows,
    run_worker,
    state_of,
)

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import json, os, sys
from tests.integration.test_outbound_crash import seed
from tests.support.fake_host import FakeHost
from tests.support.plugin_app import create_app
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.state import get_state
host = FakeHost()
seed(host)
app = create_app(json.loads(os.environ["CRASH_TEST_CONFIG"]), host)
with app.app_context():
    process(get_state(app), int(sys.argv[1]))
"""


def seed(host) -> None:
    host.contacts[(TENANT, "c1")] = contact()
    host.invoices[(TENANT, "inv1")] = invoice()


def _expire_push_locks(app) -> None:
    """The dead worker's record locks expire with its lease; recovery happens after both."""
    redis = state_of(app).redis
    for key in redis.scan_iter("crm-qbo:push:*"):
        redis.delete(key)


def test_worker_killed_after_qbo_created_the_invoice_leaves_one_invoice(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        seed(fake_host)
        outbox_id = publish(app, EventType.INVOICE_SENT, "inv1")
        rule = Rule(pattern=r"/invoice$", action="hold", hold_seconds=20)
        proxy.rules.append(rule)
        config = {**app.config}
        env = {**os.environ, "CRASH_TEST_CONFIG": json.dumps({k: v for k, v in config.items() if k.startswith("CRM_QBO_")})}
        worker = subprocess.Popen([sys.executable, "-c", WORKER, str(outbox_id)], cwd=ROOT, env=env)
        try:
            assert rule.answered.wait(60), "the worker never created the invoice"
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
        assert len(qbo_rows(app, realm, "Invoice")) == 1  # QBO has it ...
        assert get_link(state_of(app), TENANT, "invoice", "inv1").qbo_id is None  # ... the link does not

        _expire_push_locks(app)
        assert process(state_of(app), outbox_id, now=utcnow() + timedelta(minutes=10)) == "done"
        invoices = qbo_rows(app, realm, "Invoice")
    assert len(invoices) == 1
    link = get_link(state_of(app), TENANT, "invoice", "inv1")
    assert link.status == "synced" and link.qbo_id == invoices[0]["Id"]


def test_lost_response_on_customer_create_leaves_one_customer(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        seed(fake_host)
        proxy.rules.append(Rule(pattern=r"/customer$", times=1))
        publish(app, EventType.INVOICE_SENT, "inv1")
        run_worker(app)
        customers = qbo_rows(app, realm, "Customer")
        creates = proxy.writes("/customer")
    assert len(customers) == 1
    assert len(creates) == 2 and creates[0]["args"]["requestid"] == creates[1]["args"]["requestid"]
    stats = requests.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json()
    assert stats["by_endpoint"]["replay"] == 1
    assert get_link(state_of(app), TENANT, "contact", "c1").qbo_id == customers[0]["Id"]


def test_every_answer_lost_then_a_later_attempt_links_the_one_customer(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        seed(fake_host)
        proxy.rules.append(Rule(pattern=r"/customer$", times=50))
        outbox_id = publish(app, EventType.INVOICE_SENT, "inv1")
        run_worker(app)
        assert get_link(state_of(app), TENANT, "invoice", "inv1").status == "pending"
        proxy.rules.clear()
        assert process(state_of(app), outbox_id, now=utcnow() + timedelta(hours=1)) == "done"
        assert len(qbo_rows(app, realm, "Customer")) == 1
        assert len(qbo_rows(app, realm, "Invoice")) == 1
