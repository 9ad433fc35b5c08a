"""A CRM payment retried after Xero forgot its Idempotency-Key finds the payment its first attempt
made by the marker in its Reference, never a bookkeeper's payment on the same invoice that day
(found by the soak: the CRM's 30.00 was taken for the 20.00 paid in Xero, and never reached Xero)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from sqlmodel import Session, select

from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.tables import OutboxEvent
from crm_qbo_plugin.store.types import utcnow
from tests.support.xero_stack import XeroStack, xero_crm_stack, xero_sandbox
from tests.xero_sandbox.support import connect, register_app


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _someone_in_xero_pays(stack: XeroStack, invoice_id: str, amount: str) -> str:
    register_app(stack.xero_url, client_id="someone-in-xero", redirect_uris=["http://127.0.0.1/unused"])
    token = connect(stack.xero_url, client_id="someone-in-xero", tenant_ids=[stack.org])["access_token"]
    answer = requests.put(f"{stack.xero_url}/api.xro/2.0/Payments", timeout=10, json={"Payments": [{
        "Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Amount": amount,
        "Date": utcnow().date().isoformat()}]},
        headers={"Authorization": f"Bearer {token}", "xero-tenant-id": stack.org, "Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["Payments"][0]["PaymentID"])


def test_a_retried_crm_payment_never_takes_a_payment_made_in_xero_for_its_own(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                            "email": "ada@example.com"}).json
        invoice = stack.api("POST", "/api/invoices", json={"contact_id": contact["id"], "lines": [
            {"name": "Gardening", "quantity": "1", "unit_price": "100.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        stack.work()
        state = get_state(stack.app)
        xero_invoice_id = get_link(state, stack.tenant, "invoice", invoice["id"]).qbo_id
        theirs = _someone_in_xero_pays(stack, xero_invoice_id, "20.00")

        # the CRM's payment: its first push fails (Xero is down for it), its retry runs later
        stack.control("POST", "faults", path="/Payments", method="PUT", status=503, body="down", times=50)
        paid = stack.api("POST", "/api/payments", json={"source": "invoice", "invoice_id": invoice["id"], "amount": "30.00"})
        assert paid.status_code == 201, paid.json
        with Session(state.engine) as db:
            row = db.exec(select(OutboxEvent).where(OutboxEvent.subject_id == paid.json["id"])).one()
        with stack.app.app_context():
            assert process(state, row.id) != "done"
        stack.control("DELETE", "faults")
        with stack.app.app_context():
            assert process(state, row.id, now=utcnow() + timedelta(hours=1)) == "done"

        with stack.xero() as xero:
            after = xero.get_invoice(xero_invoice_id)
        assert sorted(Decimal(str(p["Amount"])) for p in after["Payments"]) == [Decimal("20.00"), Decimal("30.00")]
        link = get_link(state, stack.tenant, "payment", paid.json["id"])
        assert link is not None and link.qbo_id != theirs
