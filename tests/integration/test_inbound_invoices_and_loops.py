"""QBO invoices and payments → CRM, and loop prevention (C20, C21, C22): imported invoices stay
QBO's; CRM-pushed invoices take only QBO's payment state; our own echoes are dropped while a
genuine edit right after our write goes through; a rounding difference settles after one flag."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from crm_qbo_plugin import Contact, Invoice, InvoiceStatus, LineItem, Origin
from crm_qbo_plugin.inbound.apply import Target
from crm_qbo_plugin.inbound.cdc import poll
from crm_qbo_plugin.inbound.drain import DrainResult, Renewer, apply_together, prefetch
from crm_qbo_plugin.runtime.realm_lock import holding
from crm_qbo_plugin.store import inbox
from crm_qbo_plugin.store.connections import connection_of_realm
from tests.support.inbound import TENANT, inbound_env, our_write


@pytest.fixture
def env(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, import_invoices=True) as env:
        yield env


def _line(amount: str) -> dict:
    value = Decimal(amount)
    return {"DetailType": "SalesItemLineDetail", "Amount": value, "Description": "Consulting",
            "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}, "Qty": Decimal("1"), "UnitPrice": value}}


def _customer(qbo, name="Invoice Customer"):
    return qbo.create("Customer", {"DisplayName": name, "PrimaryEmailAddr": {"Address": f"{name.split()[0].lower()}@example.com"}})


def _pay(qbo, customer_id, invoice_id, amount):
    return qbo.create("Payment", {"CustomerRef": {"value": customer_id}, "TotalAmt": Decimal(amount),
                                  "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]})


def _crm_invoice(contact_id: str, total: str, invoice_id: str = "inv-1") -> Invoice:
    return Invoice(id=invoice_id, contact_id=contact_id, number="A-1", status=InvoiceStatus.SENT, currency="USD",
                   issue_date=date(2026, 1, 5), due_date=None, total=Decimal(total),
                   lines=(LineItem("Consulting", Decimal("1"), Decimal(total)),))


def test_a_qbo_invoice_is_imported_and_follows_payments_void_and_delete(env):
    with env.qbo() as qbo:
        customer = _customer(qbo)
        first = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line("250.00")]})
        second = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line("40.00")]})
    env.sync()
    link = env.link("invoice", first["Id"])
    assert link["origin"] == "qbo"
    imported = env.host.invoices[(TENANT, link["crm_id"])]
    contact_link = env.link("contact", customer["Id"])
    assert (imported.total, imported.amount_paid, imported.status, imported.origin, imported.contact_id, imported.number) == (
        Decimal("250.00"), Decimal("0"), InvoiceStatus.SENT, Origin.QBO, contact_link["crm_id"], first["DocNumber"])
    with env.qbo() as qbo:
        _pay(qbo, customer["Id"], first["Id"], "100.00")
    env.sync()
    imported = env.host.invoices[(TENANT, link["crm_id"])]
    assert (imported.amount_paid, imported.status) == (Decimal("100.00"), InvoiceStatus.PARTIALLY_PAID)
    with env.qbo() as qbo:
        current = qbo.read("Invoice", second["Id"])
        qbo.void("Invoice", second["Id"], current["SyncToken"])
    env.sync()
    voided = env.host.invoices[(TENANT, env.link("invoice", second["Id"])["crm_id"])]
    assert (voided.status, voided.amount_paid, voided.total) == (InvoiceStatus.VOID, Decimal("0"), Decimal("0"))
    with env.qbo() as qbo:
        current = qbo.read("Invoice", second["Id"])
        qbo.delete("Invoice", second["Id"], current["SyncToken"])
    env.sync()
    deleted_link = env.link("invoice", second["Id"])
    assert deleted_link["status"] == "deleted"
    assert env.host.invoices[(TENANT, deleted_link["crm_id"])].status is InvoiceStatus.DELETED
    assert len(env.host.invoices) == 2 and len(env.host.contacts) == 1


def test_with_invoice_import_off_new_qbo_invoices_stay_out(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url, import_invoices=False) as env:
        with env.qbo() as qbo:
            customer = _customer(qbo)
            qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line("10.00")]})
        env.sync()
        assert env.host.invoices == {} and env.links("invoice") == []
        assert len(env.host.contacts) == 1
        reasons = {n["entity"]: n["reason"] for n in env.inbox()}
        assert reasons["Invoice"] == "not linked, and invoice import is off"


def test_an_invoice_the_plugin_made_but_has_not_linked_yet_is_never_imported(env):
    """A worker stopped after QuickBooks created the CRM's invoice and before its link was written:
    the invoice's webhook must not import it as a QuickBooks-owned copy (a duplicate in the CRM, and
    a link the push's retry could then never record); the retry adopts it by its marker."""
    from crm_qbo_plugin.mapping.invoice import crm_marker

    with env.qbo() as qbo:
        customer = _customer(qbo)
        ours = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line("75.00")],
                                      "PrivateNote": crm_marker(TENANT, "inv-7")})
        theirs = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line("20.00")],
                                        "PrivateNote": crm_marker("another-location", "inv-7")})
    env.sync()
    assert [link["qbo_id"] for link in env.links("invoice")] == [theirs["Id"]]  # another tenant's marker: imported
    assert [i.total for i in env.host.invoices.values()] == [Decimal("20.00")]
    reasons = {n["entity_id"]: n["reason"] for n in env.inbox() if n["entity"] == "Invoice"}
    assert reasons[ours["Id"]] == "created by the plugin for a CRM invoice; its push links it"


def _pushed_invoice(env, total_crm: str, total_qbo: str):
    """A CRM contact and invoice, pushed to QBO the way the outbound side does (C20 setup)."""
    env.host.contacts[(TENANT, "c-1")] = Contact(id="c-1", email="pushed@example.com", first_name="Pushed")
    env.host.invoices[(TENANT, "inv-1")] = _crm_invoice("c-1", total_crm)
    customer = our_write(env, "contact", "c-1", "Customer",
                         lambda qbo: qbo.create("Customer", {"DisplayName": "Pushed Person", "GivenName": "Pushed",
                                                             "PrimaryEmailAddr": {"Address": "pushed@example.com"}}))
    invoice = our_write(env, "invoice", "inv-1", "Invoice",
                        lambda qbo: qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line(total_qbo)]}))
    return customer, invoice


def test_our_pushed_records_webhooks_are_echoes_and_never_come_back(env):
    """C20: with invoice import on, our own customer and invoice webhooks write nothing back."""
    customer, invoice = _pushed_invoice(env, "100.00", "100.00")
    env.sync()
    assert env.host.writes == []
    assert len(env.host.invoices) == 1 and len(env.host.contacts) == 1
    assert [n["status"] for n in env.inbox()] == ["skipped", "skipped"]
    assert {(n["entity"], n["reason"]) for n in env.inbox()} == {
        ("Customer", "the contact already holds this version"), ("Invoice", "the invoice already holds this version")}
    with env.app.app_context():
        run = poll(env.state, TENANT)
    assert run is not None and run.counts["applied"] == 0 and env.host.writes == []


def test_an_echo_is_dropped_by_the_ledger_even_before_the_link_holds_the_token(env):
    """C20 via the write ledger: the link still holds an older token when our echo arrives."""
    env.host.contacts[(TENANT, "c-1")] = Contact(id="c-1", email="x@example.com", first_name="X")
    customer = our_write(env, "contact", "c-1", "Customer", lambda qbo: qbo.create("Customer", {"DisplayName": "X Y"}))
    updated = our_write(env, "contact", "c-1", "Customer", lambda qbo: qbo.update(
        "Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "GivenName": "X"}))
    from crm_qbo_plugin.store.tables import Link

    with env.state.engine.begin() as conn:  # as if the link update had not landed yet
        conn.execute(Link.__table__.update().values(sync_token="0"))
    env.sync()
    assert env.host.writes == []
    assert sorted(n["reason"] for n in env.inbox()) == ["echo of the plugin's own write", "the contact already holds this version"]
    assert env.link("contact", customer["Id"])["sync_token"] == updated["SyncToken"]


def test_a_genuine_edit_right_after_our_write_goes_through(env):
    """C21: our write is echoed and dropped; a QBO user's phone change a moment later is applied."""
    env.host.contacts[(TENANT, "c-1")] = Contact(id="c-1", email="ed@example.com", first_name="Ed", phone="111")
    customer = our_write(env, "contact", "c-1", "Customer", lambda qbo: qbo.create(
        "Customer", {"DisplayName": "Ed Smith", "GivenName": "Ed", "PrimaryEmailAddr": {"Address": "ed@example.com"},
                     "PrimaryPhone": {"FreeFormNumber": "111"}}))
    ours = our_write(env, "contact", "c-1", "Customer", lambda qbo: qbo.update(
        "Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "PrimaryPhone": {"FreeFormNumber": "222"}}))
    env.host.contacts[(TENANT, "c-1")] = Contact(id="c-1", email="ed@example.com", first_name="Ed", phone="222")
    env.sync()
    assert env.host.writes == []
    with env.qbo() as qbo:
        qbo.update("Customer", {"Id": customer["Id"], "SyncToken": ours["SyncToken"], "PrimaryPhone": {"FreeFormNumber": "333"}})
    env.sync()
    assert env.host.contacts[(TENANT, "c-1")].phone == "333"
    assert env.host.writes == [("contact", "c-1", Origin.QBO)]


def test_qbo_payments_update_a_pushed_invoice_and_a_delete_is_final(env):
    customer, invoice = _pushed_invoice(env, "100.00", "100.00")
    env.sync()
    with env.qbo() as qbo:
        payment = _pay(qbo, customer["Id"], invoice["Id"], "40.00")
    env.sync()
    crm = env.host.invoices[(TENANT, "inv-1")]
    assert (crm.status, crm.amount_paid, crm.total, crm.origin) == (InvoiceStatus.PARTIALLY_PAID, Decimal("40.00"), Decimal("100.00"), Origin.CRM)
    with env.qbo() as qbo:
        qbo.delete("Payment", payment["Id"], qbo.read("Payment", payment["Id"])["SyncToken"])
        qbo.delete("Invoice", invoice["Id"], qbo.read("Invoice", invoice["Id"])["SyncToken"])
    env.sync()
    assert env.host.invoices[(TENANT, "inv-1")].status is InvoiceStatus.DELETED
    link = env.link("invoice", invoice["Id"])
    assert (link["status"], link["crm_id"], link["origin"]) == ("deleted", "inv-1", "crm")
    assert len(env.host.invoices) == 1


def test_a_rounding_difference_is_stored_and_flagged_once_then_settles(env):
    """C22: the CRM says 100.39, QBO says 100.40. QBO's total is kept and flagged once; repeated
    webhooks and polls after the payment make no further writes (the loop terminates)."""
    customer, invoice = _pushed_invoice(env, "100.39", "100.40")
    env.sync()
    with env.qbo() as qbo:
        _pay(qbo, customer["Id"], invoice["Id"], "100.40")
    env.sync()
    crm = env.host.invoices[(TENANT, "inv-1")]
    assert (crm.status, crm.amount_paid, crm.total) == (InvoiceStatus.PAID, Decimal("100.40"), Decimal("100.39"))
    link = env.link("invoice", invoice["Id"])
    assert link["detail"] == {"rounding": {"crm_total": "100.39", "qbo_total": "100.40"}}
    writes = list(env.host.writes)
    assert writes == [("invoice_status", "inv-1", Origin.QBO)]
    for _ in range(3):
        with env.app.app_context():
            poll(env.state, TENANT)
        env.deliver(force=True)
        env.work()
    assert env.host.writes == writes
    assert env.link("invoice", invoice["Id"])["detail"] == link["detail"]


def test_a_body_read_before_our_next_payment_never_leaves_the_crm_short_of_quickbooks(env):
    """A drain reads a batch's bodies first and applies them after; a slow batch (QuickBooks
    throttling its other reads) can apply a body older than what our own push made meanwhile. Two
    CRM payments on an imported invoice, the second pushed between the drain's read and its write,
    once left the CRM with the first payment only while QuickBooks had both (soak seed 2027)."""
    with env.qbo() as qbo:
        customer = _customer(qbo)
        made = qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [_line("250.00")]})
    env.sync()
    crm_id = env.link("invoice", made["Id"])["crm_id"]

    def crm_payment(payment_id: str, amount: str) -> None:  # taken in the CRM, then pushed
        current = env.host.invoices[(TENANT, crm_id)]
        paid = current.amount_paid + Decimal(amount)
        status = InvoiceStatus.PAID if paid >= current.total else InvoiceStatus.PARTIALLY_PAID
        env.host.invoices[(TENANT, crm_id)] = replace(current, amount_paid=paid, status=status)
        our_write(env, "payment", payment_id, "Payment", lambda q: _pay(q, customer["Id"], made["Id"], amount))

    crm_payment("pay-a", "100.00")
    env.deliver()  # QuickBooks' notices of the first payment wait in the inbox
    state = env.state
    with env.app.app_context(), env.qbo() as qbo, holding(state.redis, env.realm) as lock:
        waiting = inbox.pending_ids(state.engine, env.realm)
        bodies = prefetch(state, qbo, waiting)  # the invoice as the first payment left it
        crm_payment("pay-b", "150.00")  # pushed while the drain's batch is still on its way
        target = Target.of(connection_of_realm(state.engine, env.realm))
        apply_together(state, target, qbo, waiting, bodies, DrainResult(), Renewer(lock))
    env.sync()

    with env.qbo() as qbo:
        assert qbo.read("Invoice", made["Id"])["Balance"] == Decimal("0")
    invoice = env.host.invoices[(TENANT, crm_id)]
    assert (invoice.amount_paid, invoice.status) == (Decimal("250.00"), InvoiceStatus.PAID)
