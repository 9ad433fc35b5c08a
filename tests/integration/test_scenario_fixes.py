"""Bugs the soak harness found, each pinned by a test that fails without its fix, plus A3 and A11
(reliability.md) end to end against the sandbox.

1. Two CRM item keys that resolve to one QuickBooks item (a SKU'd "Repairs", then a "Repairs" line
   without SKU) crashed every later push with a UNIQUE violation on qbo_link.
2. A QuickBooks-side payment folded into the answer to our own invoice write was never applied to
   the CRM ("the invoice already holds this version").
3. An invoice payment push raced an update of the same invoice into two 5010s and a false conflict.
4. An invoice voided before it reached QuickBooks kept a "pending" link, and reconcile called it
   missing.
5. Signed webhook (and host-event) bodies nested absurdly deep answered 500 (json's RecursionError).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from crm_qbo_plugin import (
    Contact,
    Invoice,
    InvoiceStatus,
    LineItem,
    Origin,
    Payment,
    PaymentSource,
    sign_host_event,
)
from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.reconcile.run import reconcile
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.links import get_link, set_status
from crm_qbo_plugin.store.tables import OutboxEvent
from qbo_sandbox.webhooks import sign
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    publish,
    qbo_rows,
    run_worker,
    state_of,
)
from tests.support.inbound import inbound_env, our_write
from tests.support.plugin_app import HOST_ID, HOST_SECRET


def _outbox(app, outbox_id):
    with session(state_of(app).engine) as db:
        return db.get(OutboxEvent, outbox_id)


def test_one_qbo_item_reached_by_two_item_keys_is_linked_once_and_both_invoices_push(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice("inv1", lines=(LineItem("Repairs", Decimal(1), Decimal("20.00"), sku="R-1"),))
    fake_host.invoices[(TENANT, "inv2")] = invoice("inv2", lines=(LineItem("Repairs", Decimal(2), Decimal("20.00")),))
    first = publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    second = publish(app, EventType.INVOICE_SENT, "inv2")
    run_worker(app)
    assert (_outbox(app, first).status, _outbox(app, second).status) == ("done", "done")
    assert [i["Name"] for i in qbo_rows(app, realm, "Item") if i["Name"].startswith("Repairs")] == ["Repairs"]
    assert len(qbo_rows(app, realm, "Invoice")) == 2


def test_a_qbo_payment_carried_by_the_answer_to_our_own_write_reaches_the_crm(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, import_invoices=True) as env:
        env.host.contacts[(TENANT, "c-1")] = Contact(id="c-1", email="p@example.com", first_name="P")
        env.host.invoices[(TENANT, "inv-1")] = Invoice(
            id="inv-1", contact_id="c-1", number=None, status=InvoiceStatus.SENT, currency="USD", issue_date=date.today(),
            due_date=None, total=Decimal("100.00"), lines=(LineItem("Work", Decimal(1), Decimal("100.00")),), origin=Origin.CRM)
        line = {"DetailType": "SalesItemLineDetail", "Amount": Decimal("100.00"),
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal(1), "UnitPrice": Decimal("100.00")}}
        customer = our_write(env, "contact", "c-1", "Customer", lambda q: q.create("Customer", {
            "DisplayName": "P", "PrimaryEmailAddr": {"Address": "p@example.com"}}))
        created = our_write(env, "invoice", "inv-1", "Invoice", lambda q: q.create("Invoice", {
            "CustomerRef": {"value": customer["Id"]}, "Line": [line]}))
        env.sync()  # our echoes come back and are recognised
        with env.qbo() as qbo:  # a QuickBooks user takes 30.00 …
            qbo.create("Payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": Decimal("30.00"),
                                   "Line": [{"Amount": Decimal("30.00"), "LinkedTxn": [{"TxnId": created["Id"], "TxnType": "Invoice"}]}]})

        def update(q):  # … and our next push of the invoice records the version that holds it
            current = q.read("Invoice", created["Id"])
            return q.update("Invoice", {"Id": created["Id"], "SyncToken": current["SyncToken"], "PrivateNote": "edited"})

        answer = our_write(env, "invoice", "inv-1", "Invoice", update)
        assert Decimal(str(answer["Balance"])) == Decimal("70.00")
        env.sync()
        env.deliver(force=True)
        env.work()
        crm = env.host.invoices[(TENANT, "inv-1")]
        assert (crm.status, crm.amount_paid) == (InvoiceStatus.PARTIALLY_PAID, Decimal("30.00"))


def test_an_invoice_payment_waits_for_a_push_of_its_invoice_in_progress(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    fake_host.payments[(TENANT, "p1")] = Payment(
        id="p1", contact_id="c1", source=PaymentSource.INVOICE, amount=Decimal("40.00"), currency="USD",
        paid_at=datetime.now(UTC), invoice_id="inv1")
    state = state_of(app)
    busy = state.redis.lock(f"crm-qbo:push:{TENANT}:invoice:inv1", timeout=60)  # another worker updates inv1
    assert busy.acquire(blocking=False)
    try:
        row = publish(app, EventType.PAYMENT_RECEIVED, "p1", source=PaymentSource.INVOICE)
        run_worker(app)
        assert _outbox(app, row).status == "pending"  # retried later, nothing written meanwhile
        assert qbo_rows(app, realm, "Payment") == []
    finally:
        busy.release()


def test_an_invoice_voided_before_it_reached_qbo_is_not_left_pending_and_the_books_match(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = replace(invoice(), status=InvoiceStatus.VOID)
    state = state_of(app)
    set_status(state, TENANT, "invoice", "inv1", "pending", "waiting to retry: QuickBooks was unavailable")
    row = publish(app, EventType.INVOICE_VOIDED, "inv1")
    run_worker(app)
    assert _outbox(app, row).status == "skipped"
    assert get_link(state, TENANT, "invoice", "inv1").status == "ignored"
    with app.app_context():
        assert reconcile(state, TENANT).result.differences == []
    assert qbo_rows(app, realm, "Invoice") == []


@pytest.mark.parametrize("body", [b"[" * 20_000, b'{"a":' * 12_000])  # under both size caps
def test_absurdly_nested_signed_bodies_are_handled_not_500(plugin_app, body):
    client = plugin_app.test_client()
    webhook = client.post("/integrations/quickbooks/webhooks", data=body,
                          headers={"intuit-signature": sign(body, "test-verifier")})
    assert (webhook.status_code, webhook.json["dead"]) == (200, 1)  # authentic: kept as a dead letter
    event = client.post("/integrations/quickbooks/events", data=body,
                        headers={"X-CRM-Host": HOST_ID, "X-CRM-Signature": sign_host_event(body, HOST_SECRET)})
    assert event.status_code == 400


# -- A3 and A11 ------------------------------------------------------------------------------------
def test_a3_a_requestid_replay_after_a_qbo_side_delete_never_stores_the_deleted_id(plugin_config, fake_host, sandbox_url):
    """A3: push, delete in QuickBooks, push again → the deleted Id is never re-linked from a replayed
    answer; the invoice is not resurrected (the link says deleted) and no second create goes out."""
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    state = state_of(app)
    first = get_link(state, TENANT, "invoice", "inv1")
    with app.app_context(), client_for(state, realm) as qbo:
        current = qbo.read("Invoice", first.qbo_id)
        qbo.delete("Invoice", first.qbo_id, current["SyncToken"])
    fake_host.invoices[(TENANT, "inv1")] = invoice(lines=(LineItem("Consulting", Decimal(3), Decimal("50.00")),))
    again = publish(app, EventType.INVOICE_UPDATED, "inv1", key="invoice.updated:inv1:2")
    run_worker(app)
    link = get_link(state, TENANT, "invoice", "inv1")
    assert _outbox(app, again).status == "skipped"
    assert (link.status, link.qbo_id) == ("deleted", first.qbo_id)
    assert qbo_rows(app, realm, "Invoice") == []


def test_a11_a_second_stale_synctoken_ends_in_conflict_not_a_retry_loop(plugin_config, fake_host, sandbox_url):
    """A11: 5010 on the update and again after the re-read → the row fails once with a conflict the
    user can act on; QBO keeps the payment link."""
    import requests

    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    qbo_id = get_link(state_of(app), TENANT, "invoice", "inv1").qbo_id
    fault = {"path": f"/v3/company/{realm}/invoice", "method": "POST", "code": 5010, "message": "Stale Object Error",
             "detail": "Stale Object Error : You and another user were working on the same thing.", "times": 2}
    requests.post(f"{sandbox_url}/_sandbox/faults", json=fault, timeout=10).raise_for_status()
    fake_host.invoices[(TENANT, "inv1")] = invoice(lines=(LineItem("Consulting", Decimal(3), Decimal("50.00")),))
    row = publish(app, EventType.INVOICE_UPDATED, "inv1", key="invoice.updated:inv1:2")
    run_worker(app)
    outbox = _outbox(app, row)
    assert (outbox.status, outbox.attempts) == ("failed", 1)
    assert "kept changing" in (outbox.last_error or "")
    assert [r["TotalAmt"] for r in qbo_rows(app, realm, "Invoice") if r["Id"] == qbo_id] == [Decimal("100.00")]
