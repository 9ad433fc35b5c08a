"""Invoice numbers: the reference CRM numbers invoices created at the same moment uniquely (SQLite
and PostgreSQL — run with CRM_QBO_TEST_DATABASE_URL for the latter), and two CRM invoices that do
share a number (older data, or a host that allows it) meet QuickBooks' duplicate-number rule (6140)
with a clear, retryable outcome: no loop, nothing lost, pushed exactly once after renumbering."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests
import sqlalchemy as sa
from sqlmodel import select

from crm_qbo_plugin.outbound.records import retry_record
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.tables import OutboxEvent
from qbo_sandbox.server import serve_in_thread
from reference_crm.app import create_app
from reference_crm.models import InvoiceRow, Location
from reference_crm.state import crm_state
from tests.support.crm_stack import crm_stack
from tests.support.reference_crm_app import close, crm_config, new_location

CONCURRENT = 8


def test_invoices_created_at_the_same_time_get_distinct_numbers(plugin_config):
    app = create_app(crm_config(plugin_config))
    try:
        location = new_location(app.test_client())
        auth = location["auth"]
        with serve_in_thread(app) as url:
            contact = requests.post(f"{url}/api/contacts", headers=auth, json={"first_name": "Ada"}, timeout=10).json()
            body = {"contact_id": contact["id"], "lines": [{"name": "Work", "quantity": "1", "unit_price": "10"}]}
            start = threading.Barrier(CONCURRENT)

            def create(_: int) -> requests.Response:
                start.wait()
                return requests.post(f"{url}/api/invoices", headers=auth, json=body, timeout=60)

            with ThreadPoolExecutor(CONCURRENT) as pool:
                answers = list(pool.map(create, range(CONCURRENT)))
        assert [a.status_code for a in answers] == [201] * CONCURRENT
        numbers = sorted(a.json()["number"] for a in answers)
        assert numbers == [f"INV-{1001 + i}" for i in range(CONCURRENT)]
        with crm_state(app).engine.connect() as conn:
            counter = conn.execute(sa.select(Location.__table__.c.next_invoice_number)).scalar_one()
        assert counter == 1001 + CONCURRENT
    finally:
        close(app)


def _invoice(stack, contact_id: str, amount: str) -> dict:
    made = stack.api("POST", "/api/invoices", json={
        "contact_id": contact_id, "lines": [{"name": "Work", "quantity": "1", "unit_price": amount}]})
    assert made.status_code == 201, made.json
    return made.json


def _qbo_invoices(stack) -> list[tuple[str, Decimal]]:
    with stack.qbo() as qbo:
        return sorted((row["DocNumber"], Decimal(str(row["TotalAmt"]))) for row in qbo.query_all("Invoice"))


def _creates(sandbox_url: str) -> int:
    return requests.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json()["by_endpoint"].get("invoice.create", 0)


def test_two_crm_invoices_sharing_a_number_fail_clearly_and_push_once_after_renumbering(plugin_config, sandbox_url):
    with crm_stack(plugin_config, sandbox_url, company={"custom_txn_numbers": True}) as stack:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "email": "ada@example.com"}).json
        first, second = _invoice(stack, contact["id"], "10.00"), _invoice(stack, contact["id"], "20.00")
        with crm_state(stack.app).engine.begin() as conn:  # what an older version (or another host) left
            conn.execute(sa.update(InvoiceRow.__table__).where(InvoiceRow.__table__.c.id == second["id"])
                         .values(number=first["number"]))
        for invoice in (first, second):
            assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        stack.sync()
        state = get_state(stack.app)
        assert _qbo_invoices(stack) == [(first["number"], Decimal("10.00"))]
        link = get_link(state, stack.tenant, "invoice", second["id"])
        reason = (f"the number {first['number']} is already used by another QuickBooks invoice; "
                  "give it another number in the CRM, then retry")
        assert (link.status, link.qbo_id, link.last_error) == ("conflict", None, reason)
        with session(state.engine) as db:
            [row] = db.exec(select(OutboxEvent).where(OutboxEvent.subject_id == second["id"])).all()
        assert (row.status, row.last_error) == ("failed", f"PushConflict: {reason}")

        creates = _creates(sandbox_url)
        stack.sync()  # no loop: nothing is tried again on its own
        assert _creates(sandbox_url) == creates
        retry_record(state, stack.tenant, "invoice", second["id"])  # Retry before renumbering: the same answer
        stack.sync()
        assert get_link(state, stack.tenant, "invoice", second["id"]).last_error == reason
        assert _qbo_invoices(stack) == [(first["number"], Decimal("10.00"))]

        renumbered = stack.api("PATCH", f"/api/invoices/{second['id']}", json={"number": "INV-2001"})
        assert renumbered.status_code == 200 and renumbered.json["number"] == "INV-2001"
        retry_record(state, stack.tenant, "invoice", second["id"])
        stack.sync()
        retry_record(state, stack.tenant, "invoice", second["id"])  # a second click changes nothing
        stack.sync()
        assert _qbo_invoices(stack) == [(first["number"], Decimal("10.00")), ("INV-2001", Decimal("20.00"))]
        link = get_link(state, stack.tenant, "invoice", second["id"])
        assert (link.status, link.last_error) == ("synced", None)


def test_renumbering_to_a_number_the_location_uses_is_refused(plugin_config):
    app = create_app(crm_config(plugin_config))
    try:
        client = app.test_client()
        auth = new_location(client)["auth"]
        contact = client.post("/api/contacts", headers=auth, json={"first_name": "Ada"}).json
        body = {"contact_id": contact["id"], "lines": [{"name": "Work", "quantity": "1", "unit_price": "10"}]}
        first = client.post("/api/invoices", headers=auth, json=body).json
        second = client.post("/api/invoices", headers=auth, json=body).json
        refused = client.patch(f"/api/invoices/{second['id']}", headers=auth, json={"number": f" {first['number']} "})
        assert refused.status_code == 422
        assert refused.json["errors"]["json"] == {"number": [f"{first['number']} is used by another invoice of this location"]}
        assert client.get(f"/api/invoices/{second['id']}", headers=auth).json == second
        assert client.patch(f"/api/invoices/{second['id']}", headers=auth, json={"number": ""}).status_code == 422
        renumbered = client.patch(f"/api/invoices/{second['id']}", headers=auth, json={"number": " A-7 "})
        assert (renumbered.status_code, renumbered.json["number"]) == (200, "A-7")
    finally:
        close(app)
