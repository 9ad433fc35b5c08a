"""The card's settings through the plugin's API, in the reference CRM with a sandbox company (#14.8).

A sync start date is stored and honoured; a bad value for any setting is a 400 naming the field with
nothing written; what an older version left in the stored JSON never breaks the card.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import select

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, Link
from reference_crm.app import create_app
from tests.integration.outbound_helpers import qbo_rows, run_worker
from tests.support.connected import connect_directly
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

P = "/integrations/quickbooks"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def card(plugin_config, sandbox_url):
    """The reference CRM, its owner signed in, the location connected to a sandbox company."""
    register_app(sandbox_url)
    app = create_app(crm_config({**plugin_config, **plugin_overrides(sandbox_url)}))
    client = app.test_client()
    location = new_location(client, "Downtown")
    realm = create_company(sandbox_url, name="Downtown Books")
    connect_directly(app, location["id"], sandbox_url, realm)
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    signed_in = client.post("/login", data={"email": "owner@downtown.example.com", "password": "correct horse battery",
                                            "csrf_token": token})
    assert signed_in.status_code == 302
    csrf = client.get(P + "/api/status").headers["X-CSRF-Token"]
    yield SimpleNamespace(app=app, client=client, location=location, realm=realm, csrf={"X-CSRF-Token": csrf})
    close(app)


def patch(card, body: Any):
    return card.client.patch(P + "/api/settings", json=body, headers=card.csrf)


def stored(card) -> Any:
    """The connection's settings JSON exactly as the database holds it."""
    with session(get_state(card.app).engine) as db:
        return db.exec(select(Connection).where(Connection.tenant_id == card.location["id"])).one().settings


def store_raw(card, settings: Any) -> None:
    with session(get_state(card.app).engine) as db:
        row = db.exec(select(Connection).where(Connection.tenant_id == card.location["id"])).one()
        row.settings = settings
        db.add(row)
        db.commit()


def test_a_sync_start_date_is_stored_as_a_date_and_honoured_by_the_push(card):
    answer = patch(card, {"sync_from": "2026-01-01"})
    assert (answer.status_code, answer.json["sync_from"]) == (200, "2026-01-01")
    assert stored(card)["sync_from"] == "2026-01-01"
    again = card.client.get(P + "/api/settings")
    assert (again.status_code, again.json["sync_from"]) == (200, "2026-01-01")
    assert card.client.get(P + "/api/status").status_code == 200
    assert card.client.get(P + "/").status_code == 200

    account = card.client.get(P + "/api/accounts").json[0]["id"]
    assert patch(card, {"revenue_account_id": account, "taxes_confirmed": True}).status_code == 200
    auth = card.location["auth"]
    contact = card.client.post("/api/contacts", headers=auth, json={"first_name": "Ada", "email": "ada@example.com"}).json
    ids = {}
    for issued in ("2025-12-31", "2026-01-01"):
        invoice = card.client.post("/api/invoices", headers=auth, json={
            "contact_id": contact["id"], "issue_date": issued,
            "lines": [{"name": "Gardening", "quantity": "2", "unit_price": "35.00"}]}).json
        assert card.client.post(f"/api/invoices/{invoice['id']}/send", headers=auth).status_code == 200
        ids[issued] = invoice["id"]
    run_worker(card.app)
    with session(get_state(card.app).engine) as db:
        links = {link.crm_id: link for link in db.exec(select(Link).where(Link.kind == "invoice"))}
    before, on = links[ids["2025-12-31"]], links[ids["2026-01-01"]]
    assert (before.status, before.qbo_id, before.detail) == ("ignored", None, {"reason": "before_sync_from"})
    assert before.last_error == "dated before 2026-01-01, the sync start date on the QuickBooks card"
    assert on.status == "synced"
    assert [row["Id"] for row in qbo_rows(card.app, card.realm, "Invoice")] == [on.qbo_id]

    cleared = patch(card, {"sync_from": None})
    assert (cleared.status_code, cleared.json["sync_from"], stored(card)["sync_from"]) == (200, None, None)


BAD = [
    ({"sync_from": "2026-02-30"}, "sync_from"),
    ({"sync_from": "next tuesday"}, "sync_from"),
    ({"sync_from": 20260101}, "sync_from"),
    ({"import_invoices": "perhaps"}, "import_invoices"),
    ({"review_request": [True]}, "review_request"),
    ({"auto_sync": "sometimes"}, "auto_sync"),
    ({"taxes_confirmed": None}, "taxes_confirmed"),
    ({"revenue_account_id": ""}, "revenue_account_id"),
    ({"revenue_account_id": 42}, "revenue_account_id"),
    ({"revenue_account_id": "1" * 33}, "revenue_account_id"),
    ({"tax_mapping": "vat=5"}, "tax_mapping"),
    ({"tax_mapping": {"vat": 5}}, "tax_mapping"),
    ({"tax_mapping": {"": "5"}}, "tax_mapping"),
    ({"tax_mapping": None}, "tax_mapping"),
    ({"review_request_since": "2026-01-01T00:00:00+00:00"}, "review_request_since"),  # the plugin's to set
    ({"export_on_send": "maybe"}, "export_on_send"),
    ({"export_on_send": None}, "export_on_send"),
    ({"import_customers": "perhaps"}, "import_customers"),
    ({"field_mapping": "invoice.number=PrivateNote"}, "field_mapping"),
    ({"field_mapping": {"invoice.number": "Memo"}}, "field_mapping"),  # not a QuickBooks field offered for it
    ({"field_mapping": {"invoice.total": "DocNumber"}}, "field_mapping"),  # not a mapped CRM field
    ({"field_mapping": {"contact.id": "DocNumber"}}, "field_mapping"),
    ({"field_mapping": {"invoice.number": 5}}, "field_mapping"),
    ({"field_mapping": None}, "field_mapping"),
    ({"export_on_send": False, "field_mapping": {"invoice.number": "DocNumber", "contact.id": "Memo"}}, "field_mapping"),
    ({"auto_sync": False, "review_request": True, "sync_from": "01/02/2026"}, "sync_from"),  # nothing half-written
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_a_bad_value_for_any_setting_is_a_400_naming_it_and_nothing_is_written(card, body, field):
    assert patch(card, {"sync_from": "2026-01-01", "review_request": False}).status_code == 200
    before, shown = stored(card), card.client.get(P + "/api/settings").json
    answer = patch(card, body)
    assert answer.status_code == 400
    assert (answer.json["error"], list(answer.json["fields"])) == ("invalid request", [field])
    assert stored(card) == before
    assert card.client.get(P + "/api/settings").json == shown


def test_values_an_older_version_stored_read_as_their_defaults_and_the_card_keeps_working(card):
    garbage = {"import_invoices": True, "review_request": "sometimes", "auto_sync": "false", "revenue_account_id": 7,
               "taxes_confirmed": True, "tax_mapping": ["vat"], "sync_from": "01/02/2026",
               "review_request_since": "yesterday", "legacy_flag": 1}
    store_raw(card, garbage)
    shown = card.client.get(P + "/api/settings")
    assert shown.status_code == 200
    assert shown.json == {"import_invoices": True, "review_request": False, "auto_sync": False,
                          "revenue_account_id": None, "payment_account_id": None, "taxes_confirmed": True, "tax_mapping": {},
                          "sync_from": None, "review_request_since": None, "export_on_send": True,
                          "import_customers": True, "field_mapping": {}}
    assert card.client.get(P + "/api/status").json["setup"]["revenue_account_chosen"] is False
    assert card.client.get(P + "/").status_code == 200

    answer = patch(card, {"sync_from": "2026-03-01", "review_request": True})
    assert (answer.status_code, answer.json["sync_from"], answer.json["review_request"]) == (200, "2026-03-01", True)
    since = answer.json["review_request_since"]
    assert since.endswith("+00:00")
    # only what changed is rewritten, in canonical form; the rest stays as it was
    assert stored(card) == {**garbage, "sync_from": "2026-03-01", "review_request": True, "review_request_since": since}


def test_a_settings_json_that_is_not_an_object_reads_as_the_defaults(card):
    store_raw(card, ["not", "an", "object"])
    shown = card.client.get(P + "/api/settings")
    assert (shown.status_code, shown.json["auto_sync"], shown.json["sync_from"]) == (200, True, None)
    assert patch(card, {"auto_sync": False}).status_code == 200
    assert stored(card) == {"auto_sync": False}


def test_the_card_page_shows_the_stored_toggles_before_reconnecting(card):
    store_raw(card, {"review_request": True, "import_invoices": "perhaps"})
    with session(get_state(card.app).engine) as db:
        row = db.exec(select(Connection).where(Connection.tenant_id == card.location["id"])).one()
        row.status = "needs_reconnect"
        db.add(row)
        db.commit()
    page = card.client.get(P + "/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    boxes = {m.group(1): "checked" in m.group(0) for m in re.finditer(r'<input type="checkbox"[^>]*id="([\w-]+)"[^>]*>', html)}
    assert boxes == {"import-invoices": False, "review-request-pre": True, "import-customers": True}
    store_raw(card, ["not", "an", "object"])
    assert card.client.get(P + "/").status_code == 200


def test_invoices_cannot_be_imported_without_their_customers(card):
    with session(get_state(card.app).engine) as db:
        row = db.exec(select(Connection).where(Connection.tenant_id == card.location["id"])).one()
        row.status = "disconnected"
        db.add(row)
        db.commit()
    assert patch(card, {"import_invoices": True}).status_code == 200
    before = stored(card)
    answer = patch(card, {"import_customers": False})
    assert (answer.status_code, answer.json["error"], list(answer.json["fields"])) == (
        400, "settings not changed", ["import_customers"])
    assert stored(card) == before
    answer = patch(card, {"import_customers": False, "import_invoices": False})
    assert (answer.status_code, answer.json["import_customers"], answer.json["import_invoices"]) == (200, False, False)
    answer = patch(card, {"import_invoices": True})
    assert (answer.status_code, list(answer.json["fields"])) == (400, ["import_invoices"])
