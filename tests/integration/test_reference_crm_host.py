"""ReferenceHost, the CRM's side of the plugin contract, against the CRM's own database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from crm_qbo_plugin import (
    Contact,
    CrmHost,
    HostUser,
    Invoice,
    InvoiceStatus,
    LineItem,
    Origin,
    Payment,
    PaymentSource,
    Tax,
    TriggerCall,
)
from crm_qbo_plugin.state import get_state
from reference_crm import signin
from reference_crm.app import create_app
from reference_crm.db import session as crm_session
from reference_crm.models import User
from reference_crm.state import crm_state
from tests.support.reference_crm_app import close, crm_config, new_location, outbox


@pytest.fixture
def app(plugin_config):
    app = create_app(crm_config(plugin_config))
    yield app
    close(app)


@pytest.fixture
def host(app):
    return get_state(app).host


@pytest.fixture
def seeded(app):
    """A location with a tax rate, a contact, a sent invoice and two payments, made through the API."""
    client = app.test_client()
    loc = new_location(client, tax_rates=[{"name": "State tax", "rate_percent": "8.25"}])
    auth = loc["auth"]
    contact = client.post("/api/contacts", headers=auth, json={
        "first_name": "Grace", "last_name": "Hopper", "email": "Grace.Hopper@Example.com", "phone": "+1 555 0100",
        "company": "Navy"}).json
    invoice = client.post("/api/invoices", headers=auth, json={
        "contact_id": contact["id"], "issue_date": "2026-03-01", "due_date": "2026-03-31",
        "billing_email": "ap@example.com", "lines": [
            {"name": "Audit", "sku": "AUD", "quantity": "2", "unit_price": "100.125", "discount": "10.00",
             "tax_ids": [loc["tax_rates"][0]["id"]], "description": "Yearly"}]}).json
    client.post(f"/api/invoices/{invoice['id']}/send", headers=auth)
    paid = client.post("/api/payments", headers=auth, json={
        "source": "invoice", "invoice_id": invoice["id"], "amount": "50.00", "reference": "chq 12"}).json
    sub = client.post("/api/payments", headers=auth, json={
        "source": "subscription", "contact_id": contact["id"], "amount": "9.99",
        "paid_at": "2026-03-02T10:00:00+01:00",
        "lines": [{"name": "Monthly plan", "sku": "PLAN-M", "quantity": "1", "unit_price": "9.99"}]}).json
    return {"tenant": loc["id"], "tax": loc["tax_rates"][0]["id"], "contact": contact, "invoice": invoice,
            "paid": paid, "sub": sub, "client": client, "auth": auth}


def test_it_implements_the_plugin_contract(host):
    assert isinstance(host, CrmHost)


def test_reads_map_rows_to_the_plugins_records(host, seeded):
    tenant, contact_id = seeded["tenant"], seeded["contact"]["id"]
    contact = host.get_contact(tenant, contact_id)
    assert contact == Contact(id=contact_id, email="Grace.Hopper@Example.com", first_name="Grace", last_name="Hopper",
                              company_name="Navy", phone="+1 555 0100", origin=Origin.CRM, updated_at=contact.updated_at)
    assert contact.updated_at.tzinfo is UTC

    invoice = host.get_invoice(tenant, seeded["invoice"]["id"])
    # 2 × 100.125 = 200.25; − 10.00; tax 8.25% of 190.25 = 15.695… → 15.70; total 205.95
    assert invoice == Invoice(
        id=seeded["invoice"]["id"], contact_id=contact_id, number="INV-1001", status=InvoiceStatus.PARTIALLY_PAID,
        currency="USD", issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31),
        lines=(LineItem(name="Audit", quantity=Decimal("2"), unit_price=Decimal("100.125"), description="Yearly",
                        sku="AUD", discount=Decimal("10.00"), tax_ids=(seeded["tax"],)),),
        total=Decimal("205.95"), amount_paid=Decimal("50.00"), billing_email="ap@example.com",
        discount_total=Decimal("0.00"), taxes=(Tax(id=seeded["tax"], name="State tax", rate_percent=Decimal("8.25")),),
        origin=Origin.CRM, sent_at=invoice.sent_at, updated_at=invoice.updated_at,
    )
    assert invoice.sent_at.tzinfo is UTC and invoice.updated_at.tzinfo is UTC

    assert host.get_payment(tenant, seeded["paid"]["id"]) == Payment(
        id=seeded["paid"]["id"], contact_id=contact_id, source=PaymentSource.INVOICE, amount=Decimal("50.00"),
        currency="USD", paid_at=host.get_payment(tenant, seeded["paid"]["id"]).paid_at,
        invoice_id=seeded["invoice"]["id"], reference="chq 12")
    assert host.get_payment(tenant, seeded["sub"]["id"]) == Payment(
        id=seeded["sub"]["id"], contact_id=contact_id, source=PaymentSource.SUBSCRIPTION, amount=Decimal("9.99"),
        currency="USD", paid_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        lines=(LineItem(name="Monthly plan", quantity=Decimal("1"), unit_price=Decimal("9.99"), sku="PLAN-M"),))


def test_reads_are_scoped_by_tenant(app, host, seeded):
    other = new_location(seeded["client"], "Elsewhere")["id"]
    assert host.get_contact(other, seeded["contact"]["id"]) is None
    assert host.get_invoice(other, seeded["invoice"]["id"]) is None
    assert host.get_payment(other, seeded["paid"]["id"]) is None
    assert host.find_contact_by_email(other, "grace.hopper@example.com") is None
    assert host.get_contact(seeded["tenant"], "ct_missing") is None


def test_find_contact_by_email_ignores_case_and_spaces(host, seeded):
    found = host.find_contact_by_email(seeded["tenant"], "  GRACE.hopper@example.COM ")
    assert found is not None and found.id == seeded["contact"]["id"]
    assert host.find_contact_by_email(seeded["tenant"], "grace@example.com") is None
    assert host.find_contact_by_email(seeded["tenant"], "") is None


def test_a_deleted_invoice_is_still_readable_as_deleted(host, seeded):
    client, auth = seeded["client"], seeded["auth"]
    other = client.post("/api/invoices", headers=auth, json={
        "contact_id": seeded["contact"]["id"], "lines": [{"name": "X", "quantity": "1", "unit_price": "1"}]}).json
    client.post(f"/api/invoices/{other['id']}/send", headers=auth)
    assert client.delete(f"/api/invoices/{other['id']}", headers=auth).status_code == 204
    assert host.get_invoice(seeded["tenant"], other["id"]).status is InvoiceStatus.DELETED


def test_contacts_from_quickbooks_are_stored_and_published_with_origin_qbo(app, host, seeded):
    tenant = seeded["tenant"]
    before = outbox(app)
    with app.app_context():
        new_id = host.upsert_contact(tenant, Contact(id="", email="kb@example.com", first_name="Katherine",
                                                     last_name="Johnson", company_name="NASA"), Origin.QBO)
        same_id = host.upsert_contact(tenant, Contact(id=new_id, email="kb@example.com", first_name="Katherine",
                                                      last_name="Johnson", company_name="NASA", phone="555"), Origin.QBO)
        unchanged = host.upsert_contact(tenant, Contact(id=new_id, email="kb@example.com", first_name="Katherine",
                                                        last_name="Johnson", company_name="NASA", phone="555"), Origin.QBO)
        proposed = host.upsert_contact(tenant, Contact(id="qbo-123-c7", email=None, first_name="Dorothy"), Origin.QBO)
        # An id proposed again for another location is taken: that location gets a fresh one.
        other = new_location(seeded["client"], "Elsewhere")["id"]
        elsewhere = host.upsert_contact(other, Contact(id="qbo-123-c7", email=None, first_name="Dot"), Origin.QBO)
    assert new_id == same_id == unchanged
    assert proposed == "qbo-123-c7" and host.get_contact(tenant, proposed).first_name == "Dorothy"
    assert elsewhere.startswith("ct_") and host.get_contact(other, elsewhere).first_name == "Dot"
    stored = host.get_contact(tenant, new_id)
    assert (stored.origin, stored.phone, stored.company_name) == (Origin.QBO, "555", "NASA")
    assert outbox(app)[len(before):] == [
        (tenant, "contact.created", f"contact:{new_id}:v1", "qbo", None),
        (tenant, "contact.updated", f"contact:{new_id}:v2", "qbo", None),
        (tenant, "contact.created", "contact:qbo-123-c7:v1", "qbo", None),
        (other, "contact.created", f"contact:{elsewhere}:v1", "qbo", None),
    ]


def test_invoices_from_quickbooks_keep_quickbooks_totals(app, host, seeded):
    tenant, contact_id = seeded["tenant"], seeded["contact"]["id"]
    imported = Invoice(
        id="qbo-123-i1037", contact_id=contact_id, number="1037", status=InvoiceStatus.SENT, currency="USD",
        issue_date=date(2026, 2, 1), due_date=date(2026, 3, 3),
        lines=(LineItem(name="Rock Fountain", quantity=Decimal("1"), unit_price=Decimal("275"), sku="RF",
                        tax_ids=("TAX",)),),
        total=Decimal("291.60"), discount_total=Decimal("5.00"), taxes=(Tax(id="2", name="California", rate_percent=Decimal("8")),),
        origin=Origin.QBO,
    )
    before = outbox(app)
    with app.app_context():
        invoice_id = host.upsert_invoice(tenant, imported, Origin.QBO)
        again = host.upsert_invoice(tenant, Invoice(**{**imported.__dict__, "id": invoice_id, "amount_paid": Decimal("97")}), Origin.QBO)
    stored = host.get_invoice(tenant, invoice_id)
    assert again == invoice_id == "qbo-123-i1037"
    assert (stored.origin, stored.number, stored.total, stored.amount_paid, stored.discount_total, stored.taxes) == (
        Origin.QBO, "1037", Decimal("291.60"), Decimal("97.00"), Decimal("5.00"), imported.taxes)
    answer = seeded["client"].get(f"/api/invoices/{invoice_id}", headers=seeded["auth"]).json
    assert (answer["subtotal"], answer["discount_total"], answer["tax_total"], answer["balance"], answer["origin"]) == (
        "275.00", "5.00", "21.60", "194.60", "qbo")
    assert outbox(app)[len(before):] == [
        (tenant, "invoice.updated", f"invoice:{invoice_id}:v1", "qbo", None),
        (tenant, "invoice.updated", f"invoice:{invoice_id}:v2", "qbo", None),
    ]


def test_payment_state_from_quickbooks_updates_the_invoice_once(app, host, seeded):
    tenant, invoice_id = seeded["tenant"], seeded["invoice"]["id"]
    before = outbox(app)
    with app.app_context():
        host.update_invoice_status(tenant, invoice_id, InvoiceStatus.PAID, Decimal("205.95"))
        host.update_invoice_status(tenant, invoice_id, InvoiceStatus.PAID, Decimal("205.95"))
    stored = host.get_invoice(tenant, invoice_id)
    assert (stored.status, stored.amount_paid) == (InvoiceStatus.PAID, Decimal("205.95"))
    assert outbox(app)[len(before):] == [(tenant, "invoice.updated", f"invoice:{invoice_id}:v4", "qbo", None)]


def test_a_void_from_quickbooks_publishes_invoice_voided(app, host, seeded):
    tenant = seeded["tenant"]
    client, auth = seeded["client"], seeded["auth"]
    other = client.post("/api/invoices", headers=auth, json={
        "contact_id": seeded["contact"]["id"], "lines": [{"name": "X", "quantity": "1", "unit_price": "3"}]}).json
    client.post(f"/api/invoices/{other['id']}/send", headers=auth)
    with app.app_context():
        host.update_invoice_status(tenant, other["id"], InvoiceStatus.VOID, Decimal("0"))
    assert outbox(app)[-1] == (tenant, "invoice.voided", f"invoice:{other['id']}:v3", "qbo", None)


def test_triggers_are_logged_once_per_key_and_review_requests_send_a_message(app, host, seeded):
    tenant, contact_id = seeded["tenant"], seeded["contact"]["id"]
    call = TriggerCall(tenant=tenant, trigger="review_request", contact_id=contact_id,
                       payload={"invoice_id": seeded["invoice"]["id"], "total": Decimal("205.95")},
                       idempotency_key="review_request:ct:1")
    host.fire_trigger(call)
    host.fire_trigger(call)
    host.fire_trigger(TriggerCall(tenant=tenant, trigger="other_trigger", contact_id=contact_id, idempotency_key="k2"))
    client, auth = seeded["client"], seeded["auth"]
    log = client.get("/api/automation-log", headers=auth).json
    assert [(e["trigger"], e["idempotency_key"], e["payload"]) for e in log] == [
        ("other_trigger", "k2", {}),
        ("review_request", "review_request:ct:1", {"invoice_id": seeded["invoice"]["id"], "total": "205.95"}),
    ]
    [message] = client.get("/api/messages", headers=auth).json
    assert (message["to_address"], message["subject"], message["contact_id"]) == (
        "Grace.Hopper@Example.com", "How did we do?", contact_id)
    assert message["body"].startswith("Hi Grace Hopper,")


def test_current_user_comes_from_the_signed_in_session(app, host, seeded):
    with crm_state(app).engine.connect() as conn:
        user_id = conn.execute(sa.text("SELECT id FROM crm_user")).scalar_one()
    with crm_session(crm_state(app).engine) as db:
        token = signin.start_session(db, db.get(User, user_id))
        db.commit()
    with app.test_request_context("/"):
        assert host.current_user() is None
        from flask import session

        session[signin.SESSION_TOKEN] = "not-a-live-session"
        assert host.current_user() is None
        session[signin.SESSION_TOKEN] = token
        assert host.current_user() == HostUser(id=user_id, tenant=seeded["tenant"], name="owner@downtown.example.com")
    with app.app_context():
        assert host.current_user() is None  # a worker has no signed-in user


def test_location_profile_gives_currency_and_tax_rates(host, seeded):
    from decimal import Decimal

    profile = host.location_profile(seeded["tenant"])
    assert profile.currency == "USD"
    assert [(t.id, t.name, t.rate_percent) for t in profile.taxes] == [(seeded["tax"], "State tax", Decimal("8.25"))]
    assert host.location_profile("no-such-location") is None
