"""CRM → QBO pushes against the sandbox: the requests sent, matching, names, gates, statuses."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import requests
from sqlmodel import select

from crm_qbo_plugin import LineItem, Payment, PaymentSource
from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound.records import ignore_record, retry_record
from crm_qbo_plugin.qbo import build_select, eq
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.tables import OutboxEvent, WriteLedger
from tests.integration.outbound_helpers import (
    TENANT,
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


def _sample_keys(samples_dir, name, wrapper=None):
    data = json.loads((samples_dir / name).read_text())
    return set(data[wrapper] if wrapper else data)


def _outbox(app, outbox_id):
    with session(state_of(app).engine) as db:
        return db.get(OutboxEvent, outbox_id)


def test_golden_requests_for_each_event_kind(plugin_config, fake_host, sandbox_url, samples_dir):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        fake_host.contacts[(TENANT, "c1")] = contact(phone="(555) 555-5555")
        fake_host.invoices[(TENANT, "inv1")] = invoice()
        fake_host.payments[(TENANT, "p1")] = Payment(
            id="p1", contact_id="c1", source=PaymentSource.ORDER_FORM, amount=Decimal("25.00"), currency="USD",
            paid_at=datetime.now(UTC), lines=(LineItem(name="Book", quantity=Decimal(1), unit_price=Decimal(25)),))
        fake_host.payments[(TENANT, "p2")] = Payment(
            id="p2", contact_id="c1", source=PaymentSource.INVOICE, amount=Decimal("40.00"), currency="USD",
            paid_at=datetime.now(UTC), invoice_id="inv1")
        publish(app, EventType.INVOICE_SENT, "inv1")
        run_worker(app)
        publish(app, EventType.PAYMENT_RECEIVED, "p1", source=PaymentSource.ORDER_FORM)
        publish(app, EventType.PAYMENT_RECEIVED, "p2", source=PaymentSource.INVOICE)
        run_worker(app)

        [customer] = proxy.writes("/customer")
        assert customer["body"] == {"DisplayName": "Jane Smith", "GivenName": "Jane", "FamilyName": "Smith",
                                    "PrimaryEmailAddr": {"Address": "jane@example.com"},
                                    "PrimaryPhone": {"FreeFormNumber": "(555) 555-5555"}}
        assert set(customer["body"]) <= _sample_keys(samples_dir, "customer-create-request.json")
        assert customer["args"]["requestid"].endswith(":cu0")

        [inv] = proxy.writes("/invoice")
        customer_id = get_link(state_of(app), TENANT, "contact", "c1").qbo_id
        item_id = get_link(state_of(app), TENANT, "item", "name:consulting").qbo_id
        assert inv["body"] == {
            "CustomerRef": {"value": customer_id},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("100.00"), "Description": "Consulting",
                      "SalesItemLineDetail": {"ItemRef": {"value": item_id}, "Qty": 2, "UnitPrice": 50,
                                              "TaxCodeRef": {"value": "NON"}}}],
            "TxnDate": date.today().isoformat(),
            "PrivateNote": "CRM ref: loc-1/inv1",
        }
        minimal = json.loads((samples_dir / "invoice-create-request-minimal.json").read_text())
        assert set(minimal) <= set(inv["body"])
        assert set(minimal["Line"][0]) <= set(inv["body"]["Line"][0])

        [receipt] = proxy.writes("/salesreceipt")
        # PrivateNote (our CRM marker) is a SalesReceipt field the sample happens not to fill
        assert set(receipt["body"]) <= _sample_keys(samples_dir, "salesreceipt-read-response.json", "SalesReceipt") | {"PrivateNote"}
        assert receipt["body"]["Line"][0]["Amount"] == Decimal("25.00")

        [pay] = proxy.writes("/payment")
        invoice_qbo = get_link(state_of(app), TENANT, "invoice", "inv1").qbo_id
        assert set(_sample_keys(samples_dir, "payment-create-request-unapplied.json")) <= set(pay["body"])
        assert pay["body"]["Line"] == [{"Amount": Decimal("40.00"), "LinkedTxn": [{"TxnId": invoice_qbo, "TxnType": "Invoice"}]}]

        [qbo_invoice] = qbo_rows(app, realm, "Invoice")
    assert qbo_invoice["Balance"] == Decimal("60.00")
    state = state_of(app)
    with session(state.engine) as db:
        ledger = db.exec(select(WriteLedger)).all()
    assert {(row.entity, row.entity_id) for row in ledger} >= {("Invoice", invoice_qbo), ("Customer", customer_id)}


def test_existing_customer_is_matched_by_email_case_insensitively(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    with client_for(state_of(app), realm) as qbo:
        existing = qbo.create("Customer", {"DisplayName": "J. Smith (old)", "PrimaryEmailAddr": {"Address": "JANE@Example.com"}})
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    customers = qbo_rows(app, realm, "Customer")
    assert [c["Id"] for c in customers] == [existing["Id"]]
    assert customers[0]["GivenName"] == "Jane" and customers[0]["DisplayName"] == "J. Smith (old)"
    assert get_link(state_of(app), TENANT, "contact", "c1").qbo_id == existing["Id"]

    # later edits go as sparse updates; an unlinked contact is skipped with the reason
    fake_host.contacts[(TENANT, "c1")] = contact(last="Smith-Jones")
    publish(app, EventType.CONTACT_UPDATED, "c1", key="u1")
    fake_host.contacts[(TENANT, "c2")] = contact("c2", email="other@example.com", first="Bob")
    skipped = publish(app, EventType.CONTACT_UPDATED, "c2", key="u2")
    run_worker(app)
    [customer] = qbo_rows(app, realm, "Customer")
    assert customer["FamilyName"] == "Smith-Jones"
    assert _outbox(app, skipped).status == "skipped"
    assert "no billable activity" in _outbox(app, skipped).last_error


def test_hostile_names_sync_and_are_found_again(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    hostile = [
        ("c1", "O\u2019Brien & Sons: \"West\"", "\u2013 \U0001F600  ", "ob@example.com"),
        ("c2", "  Zoë\t\x07", "x" * 600, "long@example.com"),
        ("c3", "Jane", "Smith", "jane1@example.com"),
        ("c4", "Jane", "Smith", "jane2@example.com"),
        ("c5", "Quote'", "Back\\slash", None),
    ]
    for cid, first, last, email in hostile:
        fake_host.contacts[(TENANT, cid)] = contact(cid, email=email, first=first, last=last)
        fake_host.invoices[(TENANT, f"i{cid}")] = invoice(f"i{cid}", cid)
        publish(app, EventType.INVOICE_SENT, f"i{cid}")
    run_worker(app)
    state = state_of(app)
    customers = {c["Id"]: c for c in qbo_rows(app, realm, "Customer")}
    assert len(customers) == 5
    names = [customers[get_link(state, TENANT, "contact", cid).qbo_id]["DisplayName"] for cid, *_ in hostile]
    assert names[0] == "O'Brien & Sons - \"West\" \u2013 \U0001F600"
    assert len(names[1]) <= 100 and names[1].startswith("Zoë xxx")
    assert names[2] == "Jane Smith" and names[3] == "Jane Smith (jane2@example.com)"
    assert names[4] == "Quote' Back\\slash"
    with client_for(state, realm) as qbo:
        for cid, name in zip([h[0] for h in hostile], names, strict=True):
            found = qbo.query(build_select("Customer", [eq("DisplayName", name)]))
            assert [row["Id"] for row in found] == [get_link(state, TENANT, "contact", cid).qbo_id]
    # a later push of the same contact (link lost) finds the same customer by e-mail
    with session(state.engine) as db:
        db.delete(get_link(state, TENANT, "contact", "c2"))
        db.commit()
    fake_host.invoices[(TENANT, "again")] = invoice("again", "c2")
    publish(app, EventType.INVOICE_SENT, "again")
    run_worker(app)
    assert len(qbo_rows(app, realm, "Customer")) == 5


def test_name_clash_with_a_vendor_gets_a_deterministic_name_once(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    with client_for(state_of(app), realm) as qbo:
        qbo.create("Vendor", {"DisplayName": "Jane Smith"})
        qbo.create("Employee", {"DisplayName": "Jane Smith (jane@example.com)", "GivenName": "J"})
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    [customer] = qbo_rows(app, realm, "Customer")
    assert customer["DisplayName"].startswith("Jane Smith (") and len(customer["DisplayName"]) == len("Jane Smith (abcdef)")
    fake_host.invoices[(TENANT, "inv2")] = invoice("inv2")
    publish(app, EventType.INVOICE_SENT, "inv2")
    run_worker(app)
    assert len(qbo_rows(app, realm, "Customer")) == 1


def test_records_from_before_the_connection_are_not_pushed(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "old")] = invoice("old", sent_at=datetime.now(UTC) - timedelta(days=3))
    first = publish(app, EventType.INVOICE_UPDATED, "old")
    run_worker(app)
    later = publish(app, EventType.INVOICE_UPDATED, "old", key="later")
    run_worker(app)
    assert qbo_rows(app, realm, "Invoice") == [] and qbo_rows(app, realm, "Customer") == []
    link = get_link(state_of(app), TENANT, "invoice", "old")
    assert link.status == "ignored" and "before QuickBooks was connected" in link.last_error
    assert _outbox(app, first).status == "skipped" and _outbox(app, later).status == "skipped"


def test_currency_mismatch_pushes_nothing_and_says_why(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "eur")] = invoice("eur", currency="EUR")
    outbox_id = publish(app, EventType.INVOICE_SENT, "eur")
    run_worker(app)
    assert qbo_rows(app, realm, "Invoice") == [] and qbo_rows(app, realm, "Customer") == []
    link = get_link(state_of(app), TENANT, "invoice", "eur")
    assert link.status == "failed" and "EUR" in link.last_error and "multicurrency" in link.last_error
    row = _outbox(app, outbox_id)
    assert row.status == "failed" and "EUR" in row.last_error


def test_missing_revenue_account_fails_with_what_to_do(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm, revenue_account_id=None)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice()
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    link = get_link(state_of(app), TENANT, "invoice", "inv1")
    assert link.status == "failed" and link.last_error == "choose the revenue account on the QuickBooks card"
    assert qbo_rows(app, realm, "Invoice") == []


def test_invoice_lifecycle_update_after_payment_void_and_delete(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url, custom_txn_numbers=True)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice(number="A-1")
    fake_host.invoices[(TENANT, "inv2")] = invoice("inv2", number="A-2")
    publish(app, EventType.INVOICE_SENT, "inv1")
    publish(app, EventType.INVOICE_SENT, "inv2")
    run_worker(app)
    state = state_of(app)
    qbo_id = get_link(state, TENANT, "invoice", "inv1").qbo_id
    # a QBO payment bumps the invoice's SyncToken: our update meets 5010, re-reads, retries once
    with client_for(state, realm) as qbo:
        customer = get_link(state, TENANT, "contact", "c1").qbo_id
        qbo.create("Payment", {"TotalAmt": Decimal("10.00"), "CustomerRef": {"value": customer},
                               "Line": [{"Amount": Decimal("10.00"), "LinkedTxn": [{"TxnId": qbo_id, "TxnType": "Invoice"}]}]})
    fake_host.invoices[(TENANT, "inv1")] = invoice(number="A-1b", due_date=date.today() + timedelta(days=7),
                                                   billing_email="ap@example.com")
    publish(app, EventType.INVOICE_UPDATED, "inv1", key="u1")
    run_worker(app)
    with client_for(state, realm) as qbo:
        current = qbo.read("Invoice", qbo_id)
    assert current["DocNumber"] == "A-1b" and current["BillEmail"]["Address"] == "ap@example.com"
    assert current["Balance"] == Decimal("90.00")
    assert get_link(state, TENANT, "invoice", "inv1").status == "synced"

    # a number clash is surfaced, not guessed
    fake_host.invoices[(TENANT, "inv2")] = invoice("inv2", number="A-1b")
    publish(app, EventType.INVOICE_UPDATED, "inv2", key="u2")
    run_worker(app)
    link2 = get_link(state, TENANT, "invoice", "inv2")
    assert link2.status == "conflict" and "A-1b" in link2.last_error

    fake_host.invoices[(TENANT, "inv2")] = invoice("inv2", number="A-2", status="void")
    publish(app, EventType.INVOICE_VOIDED, "inv2", key="v2")
    run_worker(app)
    with client_for(state, realm) as qbo:
        voided = qbo.read("Invoice", link2.qbo_id)
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"].startswith("Voided")
    publish(app, EventType.INVOICE_DELETED, "inv2", key="d2")
    run_worker(app)
    # deleted in the CRM: QuickBooks keeps it, voided (audit trail)
    assert [row["Id"] for row in qbo_rows(app, realm, "Invoice")] == [qbo_id, link2.qbo_id]
    assert qbo_rows(app, realm, "Invoice")[1]["SyncToken"] == voided["SyncToken"]
    assert get_link(state, TENANT, "invoice", "inv2").status == "deleted"
    # never resurrected
    publish(app, EventType.INVOICE_UPDATED, "inv2", key="u3")
    run_worker(app)
    assert len(qbo_rows(app, realm, "Invoice")) == 2


def test_closed_books_explain_themselves_then_retry_and_ignore(plugin_config, fake_host, sandbox_url):
    closed = (date.today() - timedelta(days=1)).isoformat()
    app, realm = make_app(plugin_config, fake_host, sandbox_url, books_closed_date=closed)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice(issue_date=date.today() - timedelta(days=2))
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    state = state_of(app)
    link = get_link(state, TENANT, "invoice", "inv1")
    assert link.status == "failed"
    assert link.last_error == (f"QuickBooks books are closed for {(date.today() - timedelta(days=2)).isoformat()}; "
                               "change the date or reopen the period")
    requests.patch(f"{sandbox_url}/_sandbox/companies/{realm}", json={"books_closed_date": None}, timeout=10)
    retry_record(state, TENANT, "invoice", "inv1")
    assert get_link(state, TENANT, "invoice", "inv1").status == "pending"
    run_worker(app)
    assert get_link(state, TENANT, "invoice", "inv1").status == "synced"

    ignore_record(state, TENANT, "invoice", "inv1")
    fake_host.invoices[(TENANT, "inv1")] = invoice(number="X")
    outbox_id = publish(app, EventType.INVOICE_UPDATED, "inv1", key="u1")
    run_worker(app)
    assert _outbox(app, outbox_id).last_error == "ignored on the QuickBooks card"


def test_sync_from_skips_older_records(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm, sync_from=date.today().isoformat())
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "inv1")] = invoice(issue_date=date.today() - timedelta(days=1))
    publish(app, EventType.INVOICE_SENT, "inv1")
    run_worker(app)
    link = get_link(state_of(app), TENANT, "invoice", "inv1")
    assert link.status == "ignored" and date.today().isoformat() in link.last_error
    assert qbo_rows(app, realm, "Invoice") == []


def test_imported_invoices_are_never_pushed(plugin_config, fake_host, sandbox_url):
    from crm_qbo_plugin import Origin

    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    fake_host.invoices[(TENANT, "imp")] = invoice("imp", origin=Origin.QBO)
    outbox_id = publish(app, EventType.INVOICE_UPDATED, "imp")
    run_worker(app)
    assert qbo_rows(app, realm, "Invoice") == []
    assert "imported from QuickBooks" in _outbox(app, outbox_id).last_error


def test_backlog_goes_through_batch(plugin_config, fake_host, sandbox_url):
    with proxied(sandbox_url) as proxy:
        app, realm = make_app(plugin_config, fake_host, sandbox_url, api_url=proxy.url, custom_txn_numbers=True)
        connect(app, sandbox_url, realm)
        fake_host.contacts[(TENANT, "c1")] = contact()
        fake_host.invoices[(TENANT, "first")] = invoice("first", number="N-0")
        publish(app, EventType.INVOICE_SENT, "first")
        run_worker(app)  # links the customer and the item
        for n in range(40):
            # b5 reuses the first invoice's number: its batch item fails alone (6140)
            fake_host.invoices[(TENANT, f"b{n}")] = invoice(f"b{n}", number="N-0" if n == 5 else f"N-{n + 1}")
            publish(app, EventType.INVOICE_SENT, f"b{n}")
        run_worker(app)
        batches = proxy.writes("/batch")
        singles = proxy.writes("/invoice")
        assert len(qbo_rows(app, realm, "Invoice")) == 40
    assert len(batches) == 2  # 30 + 10
    assert len(singles) == 1  # only the first, before the backlog
    state = state_of(app)
    assert all(get_link(state, TENANT, "invoice", f"b{n}").status == "synced" for n in range(40) if n != 5)
    clash = get_link(state, TENANT, "invoice", "b5")
    assert clash.status == "conflict" and "N-0" in clash.last_error
