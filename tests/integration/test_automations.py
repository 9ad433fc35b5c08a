"""Review request and accounting-event triggers: exactly once, for the right invoice, only while on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from crm_qbo_plugin.automations.claims import complete_unfinished, fire_once
from crm_qbo_plugin.automations.hooks import after_invoice_applied
from crm_qbo_plugin.onboarding.lifecycle import get_connection
from crm_qbo_plugin.onboarding.setup import update_settings
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import get_state
from tests.support.connected import connect_directly
from tests.support.plugin_app import create_app
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def auto_app(plugin_config, fake_host, sandbox_url):
    register_app(sandbox_url)
    app = create_app({**plugin_config, **plugin_overrides(sandbox_url)}, fake_host)
    realm = create_company(sandbox_url)
    connect_directly(app, "loc-1", sandbox_url, realm, review_request=True)
    app.config.update(REALM=realm, SANDBOX_URL=sandbox_url)
    yield app
    get_state(app).engine.dispose()
    get_state(app).redis.close()


class Books:
    """A customer's invoices and payments in the sandbox, through the plugin's own client."""

    def __init__(self, app, name: str = "Dana Reyes") -> None:
        self.state = get_state(app)
        self.realm = app.config["REALM"]
        with client_for(self.state, self.realm) as qbo:
            self.customer = qbo.create("Customer", {"DisplayName": name})["Id"]

    def invoice(self, amount: str, txn_date: str) -> str:
        line = {"DetailType": "SalesItemLineDetail", "Amount": Decimal(amount),
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal(1), "UnitPrice": Decimal(amount)}}
        with client_for(self.state, self.realm) as qbo:
            return str(qbo.create("Invoice", {"CustomerRef": {"value": self.customer}, "TxnDate": txn_date, "Line": [line]})["Id"])

    def pay(self, invoice_id: str, amount: str) -> None:
        body = {"CustomerRef": {"value": self.customer}, "TotalAmt": Decimal(amount),
                "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]}
        with client_for(self.state, self.realm) as qbo:
            qbo.create("Payment", body)

    def void(self, invoice_id: str) -> None:
        with client_for(self.state, self.realm) as qbo:
            current = qbo.read("Invoice", invoice_id)
            qbo.void("Invoice", invoice_id, current["SyncToken"])

    def apply(self, invoice_id: str, contact_id: str = "c1") -> list[str]:
        """What inbound apply does after it re-read a changed invoice."""
        with client_for(self.state, self.realm) as qbo:
            invoice = qbo.read("Invoice", invoice_id)
        return after_invoice_applied(self.state, get_connection(self.state, "loc-1"), invoice, contact_id)


def review_requests(host) -> list:
    return [t for t in host.triggers if t.trigger == "review_request"]


def test_two_partial_payments_give_one_request_after_the_second(auto_app, fake_host):
    books = Books(auto_app)
    first = books.invoice("100.00", "2026-01-05")
    books.pay(first, "40.00")
    assert books.apply(first) == []
    books.pay(first, "60.00")
    assert books.apply(first) == ["invoice_paid_in_full", "review_request"]
    assert books.apply(first) == []  # replayed webhook / CDC re-read
    [request] = review_requests(fake_host)
    assert request.contact_id == "c1" and request.payload["qbo_invoice_id"] == first
    assert request.idempotency_key.startswith("crm-qbo:review_request:")


def test_a_second_paid_invoice_gives_none(auto_app, fake_host):
    books = Books(auto_app)
    first, second = books.invoice("50.00", "2026-01-05"), books.invoice("80.00", "2026-02-05")
    books.pay(first, "50.00")
    books.apply(first)
    books.pay(second, "80.00")
    assert books.apply(second) == ["invoice_paid_in_full"]
    assert len(review_requests(fake_host)) == 1


def test_first_means_earliest_non_void_invoice_not_the_first_processed(auto_app, fake_host):
    books = Books(auto_app)
    older, newer = books.invoice("70.00", "2026-01-01"), books.invoice("30.00", "2026-03-01")
    books.pay(newer, "30.00")
    assert books.apply(newer) == ["invoice_paid_in_full"]  # paid first, but not the first invoice
    books.void(older)
    assert books.apply(older) == []  # a void never counts as paid
    # With #1 void, #2 is now the earliest non-void invoice; it was already settled and claimed once.
    assert review_requests(fake_host) == []


def test_zero_total_and_toggle_off_never_fire_and_switching_on_later_ignores_past_settlements(auto_app, fake_host):
    state = get_state(auto_app)
    update_settings(state, "loc-1", {"review_request": False})
    books = Books(auto_app)
    first = books.invoice("25.00", "2026-01-01")
    books.pay(first, "25.00")
    assert books.apply(first) == ["invoice_paid_in_full"]
    update_settings(state, "loc-1", {"review_request": True})
    assert books.apply(first) == []  # settled while the toggle was off
    other = Books(auto_app, name="Zero Co")
    zero = other.invoice("0.00", "2026-01-01")
    assert other.apply(zero, "c2") == []
    assert review_requests(fake_host) == []


def test_a_worker_killed_right_after_the_host_call_still_gives_exactly_one_request(auto_app, tmp_path, plugin_config):
    """The host records the trigger, then the process dies before the claim says "fired"."""
    books = Books(auto_app)
    first = books.invoice("90.00", "2026-01-01")
    books.pay(first, "90.00")
    log = tmp_path / "triggers.jsonl"
    env = {**os.environ, **plugin_config, **plugin_overrides(auto_app.config["SANDBOX_URL"]),
           "PYTHONPATH": str(ROOT), "TRIGGER_LOG": str(log), "DIE_AFTER_TRIGGER": "1"}
    script = ROOT / "tests" / "support" / "apply_invoice_once.py"
    dead = subprocess.run([sys.executable, str(script), auto_app.config["REALM"], first], env=env, timeout=60,
                          capture_output=True, text=True)
    assert dead.returncode == -signal.SIGKILL, dead.stderr

    def review_keys() -> list[str]:
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return [c["idempotency_key"] for c in calls if c["trigger"] == "review_request"]

    assert len(review_keys()) == 1
    # Recovery (the sweeper, or the next CDC re-read) completes the claim with the same key.
    env["DIE_AFTER_TRIGGER"] = "0"
    again = subprocess.run([sys.executable, str(script), auto_app.config["REALM"], first], env=env, timeout=60,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    keys = review_keys()
    assert len(keys) == 2 and len(set(keys)) == 1  # re-sent with the same key: the host sends one message
    state = get_state(auto_app)
    assert complete_unfinished(state) == 0


def test_only_declared_triggers_can_fire(auto_app):
    with pytest.raises(ValueError, match="not a trigger declared"):
        fire_once(get_state(auto_app), "loc-1", "launch_rockets", "x", "c1", {})


def test_overdue_invoices_fire_once_for_the_linked_contact(auto_app, fake_host):
    from datetime import date

    from crm_qbo_plugin.automations.overdue import fire_overdue
    from crm_qbo_plugin.store.db import session
    from crm_qbo_plugin.store.tables import Link

    books = Books(auto_app)
    late = books.invoice("40.00", "2026-01-01")
    paid = books.invoice("10.00", "2026-01-02")
    books.pay(paid, "10.00")
    state = get_state(auto_app)
    with session(state.engine) as db:
        db.add(Link(tenant_id="loc-1", kind="contact", crm_id="c7", qbo_id=books.customer, origin="crm"))
        db.commit()
    conn = get_connection(state, "loc-1")
    with client_for(state, auto_app.config["REALM"]) as qbo:
        due = qbo.read("Invoice", late)["DueDate"]
    today = date.fromisoformat(due).replace(year=date.fromisoformat(due).year + 1)
    assert fire_overdue(state, conn, today) == 1
    assert fire_overdue(state, conn, today) == 0
    [call] = [t for t in fake_host.triggers if t.trigger == "invoice_overdue"]
    assert (call.contact_id, call.payload["qbo_invoice_id"]) == ("c7", late)
