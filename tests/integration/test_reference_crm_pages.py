"""The CRM's pages: sign-in, CSRF on every form, tenant scoping, and the way to the QuickBooks card."""

from __future__ import annotations

import re

import pytest

from reference_crm.app import create_app
from tests.support.reference_crm_app import close, crm_config, new_location, outbox

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(plugin_config):
    app = create_app(crm_config(plugin_config))
    yield app
    close(app)


def sign_in(client, email: str, password: str = "correct horse battery"):
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def token_of(client, path: str) -> str:
    return CSRF.search(client.get(path).get_data(as_text=True)).group(1)


def test_pages_need_a_signed_in_user(app):
    client = app.test_client()
    for path in ("/contacts", "/invoices", "/payments", "/automations", "/settings", "/settings/integrations"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["Location"]) == (302, f"/login?next={path}")
    assert client.get("/integrations/quickbooks/").status_code == 401


def test_a_wrong_password_is_refused(app):
    client = app.test_client()
    new_location(client)
    answer = sign_in(client, "owner@downtown.example.com", "not the password")
    assert answer.status_code == 401 and "Wrong e-mail or password." in answer.get_data(as_text=True)
    assert client.get("/contacts").status_code == 302


def test_forms_without_the_csrf_token_change_nothing(app):
    client = app.test_client()
    loc = new_location(client)
    assert sign_in(client, "owner@downtown.example.com").status_code == 302
    refused = client.post("/contacts/new", data={"first_name": "Eve", "csrf_token": "forged"})
    missing = client.post("/contacts/new", data={"first_name": "Eve"})
    assert (refused.status_code, missing.status_code) == (400, 400)
    assert client.get("/api/contacts", headers=loc["auth"]).json == []
    assert outbox(app) == []


def test_the_nav_leads_to_the_quickbooks_card(app):
    client = app.test_client()
    new_location(client)
    sign_in(client, "owner@downtown.example.com")
    page = client.get("/contacts").get_data(as_text=True)
    assert '<a href="/settings" id="nav-settings">Settings</a>' in page
    assert '<a href="/settings/integrations" id="nav-integrations">Integrations</a>' in page
    assert '<a href="/integrations/quickbooks/" class="indent" id="nav-quickbooks">QuickBooks</a>' in page
    card = client.get("/integrations/quickbooks/")
    assert card.status_code == 200 and 'id="connect"' in card.get_data(as_text=True)


def test_a_user_sees_only_their_locations_records(app):
    client = app.test_client()
    new_location(client, "Alpha")
    beta = new_location(client, "Beta")
    other = client.post("/api/contacts", headers=beta["auth"], json={"first_name": "Bea"}).json
    invoice = client.post("/api/invoices", headers=beta["auth"], json={
        "contact_id": other["id"], "lines": [{"name": "X", "quantity": "1", "unit_price": "2"}]}).json
    sign_in(client, "owner@alpha.example.com")
    assert client.get(f"/contacts/{other['id']}").status_code == 404
    assert client.get(f"/invoices/{invoice['id']}").status_code == 404
    send = client.post(f"/invoices/{invoice['id']}/send", data={"csrf_token": token_of(client, "/contacts")})
    assert send.status_code == 404
    assert "Bea" not in client.get("/contacts").get_data(as_text=True)
    assert client.get(f"/api/invoices/{invoice['id']}", headers=beta["auth"]).json["status"] == "draft"


def test_contact_invoice_and_payment_forms(app):
    client = app.test_client()
    loc = new_location(client)
    sign_in(client, "owner@downtown.example.com")
    token = token_of(client, "/contacts/new")
    bad = client.post("/contacts/new", data={"csrf_token": token, "first_name": "Al", "phone": "call me"})
    assert bad.status_code == 422 and "may contain digits" in bad.get_data(as_text=True)
    made = client.post("/contacts/new", data={"csrf_token": token, "first_name": "Al", "email": "al@example.com"})
    contact_id = made.headers["Location"].rsplit("/", 1)[1]
    invoice = client.post("/invoices/new", data={
        "csrf_token": token, "contact_id": contact_id, "line-0-name": "Lesson", "line-0-quantity": "2",
        "line-0-unit_price": "30"})
    invoice_id = invoice.headers["Location"].rsplit("/", 1)[1]
    client.post(f"/invoices/{invoice_id}/send", data={"csrf_token": token})
    paid = client.post(f"/invoices/{invoice_id}/pay", data={"csrf_token": token, "amount": "60.00"})
    assert paid.status_code == 302
    taken = client.post("/payments/new", data={"csrf_token": token, "source": "calendar", "contact_id": contact_id,
                                               "amount": "15.00"})
    assert taken.status_code == 302
    assert client.get(f"/api/invoices/{invoice_id}", headers=loc["auth"]).json["status"] == "paid"
    assert [row[1] for row in outbox(app)] == [
        "contact.created", "invoice.sent", "payment.received", "invoice.updated", "payment.received"]
    assert [row[4] for row in outbox(app)] == [None, None, "invoice", None, "calendar"]


def test_void_and_delete_ask_first_and_change_nothing_until_confirmed(app):
    client = app.test_client()
    loc = new_location(client)
    auth = loc["auth"]
    contact = client.post("/api/contacts", headers=auth, json={"first_name": "Ada"}).json
    invoice = client.post("/api/invoices", headers=auth, json={
        "contact_id": contact["id"], "lines": [{"name": "Work", "quantity": "1", "unit_price": "10"}]}).json
    client.post(f"/api/invoices/{invoice['id']}/send", headers=auth)
    assert sign_in(client, "owner@downtown.example.com").status_code == 302
    token = token_of(client, f"/invoices/{invoice['id']}")
    before = (client.get(f"/api/invoices/{invoice['id']}", headers=auth).json, outbox(app))
    for action, question in (("void", "Void invoice INV-1001?"), ("delete", "Delete invoice INV-1001?")):
        asked = client.post(f"/invoices/{invoice['id']}/{action}", data={"csrf_token": token})
        page = asked.get_data(as_text=True)
        assert asked.status_code == 200 and question in page and 'name="confirmed" value="yes"' in page
        assert (client.get(f"/api/invoices/{invoice['id']}", headers=auth).json, outbox(app)) == before
    deleting = client.post(f"/invoices/{invoice['id']}/delete", data={"csrf_token": token}).get_data(as_text=True)
    assert "QuickBooks keeps it, voided" in deleting
    voided = client.post(f"/invoices/{invoice['id']}/void", data={"csrf_token": token, "confirmed": "yes"})
    assert voided.status_code == 302
    assert client.get(f"/api/invoices/{invoice['id']}", headers=auth).json["status"] == "void"
    deleted = client.post(f"/invoices/{invoice['id']}/delete", data={"csrf_token": token, "confirmed": "yes"})
    assert (deleted.status_code, deleted.headers["Location"]) == (302, "/invoices")
    assert client.get(f"/api/invoices/{invoice['id']}", headers=auth).status_code == 404
