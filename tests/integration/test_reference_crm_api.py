"""reference_crm's JSON API: round trips that land host events in the plugin's outbox, tenant
isolation, authentication, and bad input refused with nothing written."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from reference_crm.app import create_app
from reference_crm.models import metadata
from reference_crm.state import crm_state
from tests.support.reference_crm_app import ADMIN_TOKEN, close, crm_config, new_location, outbox

LINE = {"name": "Consultation", "sku": "CONS-1", "quantity": "3", "unit_price": "19.995", "discount": "5.00"}


@pytest.fixture
def app(plugin_config):
    app = create_app(crm_config(plugin_config))
    yield app
    close(app)


@pytest.fixture
def client(app):
    return app.test_client()


def counts(app) -> dict[str, int]:
    """Rows per crm_ table: what a refused request must leave unchanged."""
    with crm_state(app).engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in metadata.tables.items()}


def make_contact(client, auth, **fields):
    answer = client.post("/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                "email": "ada@example.com", **fields}, headers=auth)
    assert answer.status_code == 201, answer.json
    return answer.json


def make_invoice(client, auth, contact_id, **fields):
    answer = client.post("/api/invoices", json={"contact_id": contact_id, "lines": [LINE], **fields}, headers=auth)
    assert answer.status_code == 201, answer.json
    return answer.json


def test_contact_invoice_send_and_pay_publish_their_events(app, client):
    loc = new_location(client, tax_rates=[{"name": "QST", "rate_percent": "9.975"}])
    auth, tax_id = loc["auth"], loc["tax_rates"][0]["id"]
    assert loc["login"] == {"email": "owner@downtown.example.com", "password": None}

    contact = make_contact(client, auth)
    draft = client.post("/api/invoices", headers=auth, json={
        "contact_id": contact["id"], "due_date": "2099-01-31",
        "lines": [{**LINE, "tax_ids": [tax_id]}, {"name": "Travel", "quantity": 1, "unit_price": 0.1}],
    }).json
    # 3 × 19.995 = 59.985 → 59.99; + 0.10; discount 5.00; QST 9.975% of 54.99 = 5.485… → 5.49
    assert (draft["status"], draft["number"], draft["subtotal"], draft["discount_total"], draft["tax_total"],
            draft["total"], draft["balance"]) == ("draft", "INV-1001", "60.09", "5.00", "5.49", "60.58", "60.58")
    assert outbox(app) == [(loc["id"], "contact.created", f"contact:{contact['id']}:v1", "crm", None)]

    sent = client.post(f"/api/invoices/{draft['id']}/send", headers=auth)
    assert sent.status_code == 200 and sent.json["status"] == "sent" and sent.json["version"] == 2
    part = client.post("/api/payments", headers=auth, json={"source": "invoice", "invoice_id": draft["id"], "amount": "20.58"})
    rest = client.post("/api/payments", headers=auth, json={"source": "invoice", "invoice_id": draft["id"], "amount": 40})
    order = client.post("/api/payments", headers=auth, json={
        "source": "order_form", "contact_id": contact["id"], "amount": "24.00", "reference": "order 77",
        "lines": [{"name": "T-shirt", "sku": "TS", "quantity": "2", "unit_price": "12"}]})
    assert (part.status_code, rest.status_code, order.status_code) == (201, 201, 201)
    assert part.json["contact_id"] == contact["id"] and part.json["currency"] == "USD"

    paid = client.get(f"/api/invoices/{draft['id']}", headers=auth).json
    assert (paid["status"], paid["amount_paid"], paid["balance"], paid["version"]) == ("paid", "60.58", "0.00", 4)
    tenant, inv = loc["id"], draft["id"]
    assert outbox(app) == [
        (tenant, "contact.created", f"contact:{contact['id']}:v1", "crm", None),
        (tenant, "invoice.sent", f"invoice:{inv}:v2", "crm", None),
        (tenant, "payment.received", f"payment:{part.json['id']}", "crm", "invoice"),
        (tenant, "invoice.updated", f"invoice:{inv}:v3", "crm", None),
        (tenant, "payment.received", f"payment:{rest.json['id']}", "crm", "invoice"),
        (tenant, "invoice.updated", f"invoice:{inv}:v4", "crm", None),
        (tenant, "payment.received", f"payment:{order.json['id']}", "crm", "order_form"),
    ]
    listed = client.get(f"/api/payments?invoice_id={inv}", headers=auth).json
    assert sorted(p["amount"] for p in listed) == ["20.58", "40.00"]


def test_invoice_life_cycle_events(app, client):
    loc = new_location(client)
    auth, tenant = loc["auth"], loc["id"]
    contact = make_contact(client, auth)
    draft = make_invoice(client, auth, contact["id"])
    edited = client.patch(f"/api/invoices/{draft['id']}", headers=auth, json={"due_date": "2099-02-01"})
    assert edited.status_code == 200 and edited.json["due_date"] == "2099-02-01"
    deleted_draft = client.delete(f"/api/invoices/{draft['id']}", headers=auth)
    assert deleted_draft.status_code == 204
    assert client.get(f"/api/invoices/{draft['id']}", headers=auth).status_code == 404

    first = make_invoice(client, auth, contact["id"])
    second = make_invoice(client, auth, contact["id"])
    for invoice in (first, second):
        assert client.post(f"/api/invoices/{invoice['id']}/send", headers=auth).status_code == 200
    changed = client.patch(f"/api/invoices/{first['id']}", headers=auth,
                           json={"lines": [{"name": "Workshop", "quantity": "2", "unit_price": "150"}]})
    assert changed.json["total"] == "300.00"
    unchanged_contact = client.patch(f"/api/contacts/{contact['id']}", headers=auth, json={"first_name": "Ada"})
    assert unchanged_contact.status_code == 200 and unchanged_contact.json["version"] == 1
    voided = client.post(f"/api/invoices/{first['id']}/void", headers=auth)
    gone = client.delete(f"/api/invoices/{second['id']}", headers=auth)
    assert (voided.status_code, voided.json["status"], gone.status_code) == (200, "void", 204)
    assert [row[1:4] for row in outbox(app)[1:]] == [
        ("invoice.sent", f"invoice:{first['id']}:v2", "crm"),
        ("invoice.sent", f"invoice:{second['id']}:v2", "crm"),
        ("invoice.updated", f"invoice:{first['id']}:v3", "crm"),
        ("invoice.voided", f"invoice:{first['id']}:v4", "crm"),
        ("invoice.deleted", f"invoice:{second['id']}:v3", "crm"),
    ]
    assert {row[0] for row in outbox(app)} == {tenant}


def test_refused_state_changes_write_nothing(app, client):
    auth = new_location(client)["auth"]
    contact = make_contact(client, auth)
    invoice = make_invoice(client, auth, contact["id"])
    client.post(f"/api/invoices/{invoice['id']}/send", headers=auth)
    client.post("/api/payments", headers=auth, json={"source": "invoice", "invoice_id": invoice["id"], "amount": "1.00"})
    before, events = counts(app), outbox(app)
    state = client.get(f"/api/invoices/{invoice['id']}", headers=auth).json

    answers = [
        client.post(f"/api/invoices/{invoice['id']}/void", headers=auth),
        client.delete(f"/api/invoices/{invoice['id']}", headers=auth),
        client.post(f"/api/invoices/{invoice['id']}/send", headers=auth),
        client.post("/api/payments", headers=auth, json={"source": "invoice", "invoice_id": invoice["id"], "amount": "1000.00"}),
        client.patch(f"/api/invoices/{invoice['id']}", headers=auth,
                     json={"lines": [{"name": "Cheap", "quantity": "1", "unit_price": "0.50"}]}),
    ]
    assert [a.status_code for a in answers] == [409, 409, 409, 422, 422]
    assert answers[0].json["message"] == "an invoice with payments cannot be voided"
    assert answers[3].json["errors"] == {"json": {"amount": ["is more than the invoice's open balance (53.99)"]}}
    assert (counts(app), outbox(app)) == (before, events)
    assert client.get(f"/api/invoices/{invoice['id']}", headers=auth).json == state


@pytest.mark.parametrize(("path", "body", "errors"), [
    ("/api/contacts", {"first_name": "Bo", "email": "not-an-email", "phone": "call me"},
     {"email": ["Not a valid email address."], "phone": ["may contain digits, spaces and + ( ) . / - (at most 40)"]}),
    ("/api/contacts", {"first_name": ""}, {"first_name": ["give a name, a company or an e-mail"]}),
    ("/api/invoices", {"contact_id": "CONTACT", "lines": []}, {"lines": ["Length must be between 1 and 200."]}),
    ("/api/invoices", {"contact_id": "CONTACT", "lines": [{"name": "X", "quantity": "0", "unit_price": "1.2345"}]},
     {"lines": {"0": {"quantity": ["must be greater than 0"], "unit_price": ["must have at most 3 decimal places"]}}}),
    ("/api/invoices", {"contact_id": "CONTACT", "lines": [{**LINE, "tax_ids": ["tax_nope"]}]},
     {"lines.0.tax_ids": ["unknown tax rate(s) for this location: tax_nope"]}),
    ("/api/invoices", {"contact_id": "CONTACT", "lines": [{**LINE, "discount": "60.00"}]},
     {"lines.0.discount": ["must not exceed the line amount (59.99)"]}),
    ("/api/invoices", {"contact_id": "CONTACT", "issue_date": "2099-02-01", "due_date": "2099-01-01", "lines": [LINE]},
     {"due_date": ["must not be before the issue date"]}),
    ("/api/invoices", {"contact_id": "ct_unknown", "lines": [LINE]}, {"contact_id": ["no contact ct_unknown in this location"]}),
    ("/api/payments", {"source": "gift", "amount": "-1", "contact_id": "CONTACT"},
     {"source": ["Must be one of: order_form, subscription, membership, calendar, invoice."], "amount": ["must be greater than 0"]}),
    ("/api/payments", {"source": "invoice", "amount": "5.00"}, {"invoice_id": ["required when the source is invoice"]}),
    ("/api/payments", {"source": "calendar", "amount": "5.00", "contact_id": "CONTACT",
                       "lines": [{"name": "Slot", "quantity": "1", "unit_price": "4.99"}]},
     {"amount": ["must equal the sum of the lines (quantity × unit price, to the cent)"]}),
])
def test_bad_input_is_refused_with_field_names_and_nothing_written(app, client, path, body, errors):
    auth = new_location(client)["auth"]
    contact = make_contact(client, auth)
    body = {k: (contact["id"] if v == "CONTACT" else v) for k, v in body.items()}
    before, events = counts(app), outbox(app)
    answer = client.post(path, json=body, headers=auth)
    assert answer.status_code == 422
    assert answer.json["errors"] == {"json": errors}
    assert (counts(app), outbox(app)) == (before, events)


def test_a_location_never_sees_another_locations_records(app, client):
    a, b = new_location(client, "Alpha"), new_location(client, "Beta")
    b_contact = make_contact(client, b["auth"], email="bea@example.com")
    b_invoice = make_invoice(client, b["auth"], b_contact["id"])
    client.post(f"/api/invoices/{b_invoice['id']}/send", headers=b["auth"])
    b_payment = client.post("/api/payments", headers=b["auth"], json={
        "source": "invoice", "invoice_id": b_invoice["id"], "amount": "1.00"}).json
    before, events = counts(app), outbox(app)

    attempts = [
        client.get(f"/api/contacts/{b_contact['id']}", headers=a["auth"]),
        client.patch(f"/api/contacts/{b_contact['id']}", headers=a["auth"], json={"first_name": "Eve"}),
        client.get(f"/api/invoices/{b_invoice['id']}", headers=a["auth"]),
        client.patch(f"/api/invoices/{b_invoice['id']}", headers=a["auth"], json={"due_date": "2099-12-31"}),
        client.post(f"/api/invoices/{b_invoice['id']}/send", headers=a["auth"]),
        client.post(f"/api/invoices/{b_invoice['id']}/void", headers=a["auth"]),
        client.delete(f"/api/invoices/{b_invoice['id']}", headers=a["auth"]),
        client.get(f"/api/payments/{b_payment['id']}", headers=a["auth"]),
    ]
    assert [r.status_code for r in attempts] == [404] * 8
    cross = [
        client.post("/api/invoices", headers=a["auth"], json={"contact_id": b_contact["id"], "lines": [LINE]}),
        client.post("/api/payments", headers=a["auth"], json={"source": "invoice", "invoice_id": b_invoice["id"], "amount": "1.00"}),
        client.post("/api/payments", headers=a["auth"], json={"source": "membership", "contact_id": b_contact["id"], "amount": "1.00"}),
    ]
    assert [r.status_code for r in cross] == [422, 422, 422]
    for path in ("/api/contacts", "/api/invoices", "/api/payments", "/api/automation-log", "/api/messages"):
        assert client.get(path, headers=a["auth"]).json == [], path
    assert (counts(app), outbox(app)) == (before, events)


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer crm_not-a-key", "Basic b3duZXI6cHc=", f"Bearer {ADMIN_TOKEN}"])
def test_location_routes_need_a_location_key(app, client, header):
    new_location(client)
    headers = {"Authorization": header} if header else {}
    before = counts(app)
    answer = client.post("/api/contacts", json={"first_name": "Mallory"}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="reference_crm"'
    assert counts(app) == before


@pytest.mark.parametrize("token", [None, "wrong-admin-token-000000000"])
def test_creating_a_location_needs_the_admin_token(app, client, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.post("/api/locations", json={"name": "X", "user": {"email": "x@example.com"}}, headers=headers)
    assert answer.status_code == 401
    assert counts(app)["crm_location"] == 0


def test_without_an_admin_token_configured_locations_cannot_be_created(plugin_config):
    config = crm_config(plugin_config)
    del config["REFERENCE_CRM_ADMIN_TOKEN"]
    app = create_app(config)
    try:
        answer = app.test_client().post("/api/locations", json={"name": "X", "user": {"email": "x@example.com"}},
                                        headers={"Authorization": "Bearer anything-at-all-0000"})
        assert answer.status_code == 403
        assert answer.json["message"] == "creating locations is disabled: set REFERENCE_CRM_ADMIN_TOKEN"
        assert counts(app)["crm_location"] == 0
    finally:
        close(app)


def test_a_login_email_is_used_once(app, client):
    new_location(client, "Alpha")
    before = counts(app)
    answer = client.post("/api/locations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                         json={"name": "Other", "user": {"email": "OWNER@alpha.example.com"}})
    assert answer.status_code == 422
    assert answer.json["errors"] == {"json": {"user.email": ["is already used by another login"]}}
    assert counts(app) == before


def test_api_keys_are_stored_hashed(app, client):
    loc = new_location(client)
    with crm_state(app).engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT key_hash, prefix FROM crm_api_key")).one()
    assert loc["api_key"] not in stored.key_hash and len(stored.key_hash) == 64
    assert stored.prefix == loc["api_key"][:8]


def test_the_openapi_document_describes_the_api(client):
    doc = client.get("/api/openapi.json")
    assert doc.status_code == 200
    spec = doc.json
    assert set(spec["paths"]) == {
        "/api/locations", "/api/location", "/api/tax-rates", "/api/contacts", "/api/contacts/{contact_id}",
        "/api/invoices", "/api/invoices/{invoice_id}", "/api/invoices/{invoice_id}/send",
        "/api/invoices/{invoice_id}/void", "/api/payments", "/api/payments/{payment_id}",
        "/api/automation-log", "/api/messages",
    }
    assert set(spec["paths"]["/api/invoices/{invoice_id}"]) == {"get", "patch", "delete", "parameters"}
    assert spec["components"]["securitySchemes"]["locationKey"] == {
        "type": "http", "scheme": "bearer", "description": "A location's API key."}
    assert spec["paths"]["/api/contacts"]["post"]["security"] == [{"locationKey": []}]


def test_money_is_exact_through_the_database(app, client):
    auth = new_location(client)["auth"]
    contact = make_contact(client, auth)
    invoice = make_invoice(client, auth, contact["id"], lines=[
        {"name": "A", "quantity": "0.1", "unit_price": "0.1"}, {"name": "B", "quantity": "1", "unit_price": "0.2"},
        {"name": "C", "quantity": "1", "unit_price": "999999.999"}])
    again = client.get(f"/api/invoices/{invoice['id']}", headers=auth).json
    assert [line["amount"] for line in again["lines"]] == ["0.01", "0.20", "1000000.00"]
    assert Decimal(again["total"]) == Decimal("1000000.21")
