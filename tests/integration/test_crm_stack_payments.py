"""A payment taken in the reference CRM, end to end through the shipped stack (reference CRM +
plugin + worker + sandbox webhooks): the review request the plugin promises fires exactly once, and
no invoice update is sent that changes nothing."""

from __future__ import annotations

import requests

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.links import get_link
from tests.support.crm_stack import CrmStack, crm_stack


def _first_invoice(stack: CrmStack, total: str = "70.00") -> dict:
    contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                       "email": "ada@example.com"}).json
    invoice = stack.api("POST", "/api/invoices", json={
        "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": total}]}).json
    assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
    stack.sync()
    return invoice


def test_a_crm_payment_that_zeroes_a_contacts_first_invoice_fires_one_review_request(plugin_config, sandbox_url):
    with crm_stack(plugin_config, sandbox_url, review_request=True) as stack:
        invoice = _first_invoice(stack)
        before = requests.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json()["by_endpoint"]
        paid = stack.api("POST", "/api/payments", json={"source": "invoice", "invoice_id": invoice["id"], "amount": "70.00"})
        assert paid.status_code == 201, paid.json
        stack.sync()
        stack.sync()  # and once more: nothing new fires
        log = stack.api("GET", "/api/automation-log").json
        assert sorted(entry["trigger"] for entry in log) == ["invoice_paid_in_full", "review_request"]
        [message] = stack.api("GET", "/api/messages").json
        assert message["to_address"] == "ada@example.com"
        with stack.qbo() as qbo:
            [qbo_invoice] = qbo.query_all("Invoice")
        assert qbo_invoice["Balance"] == 0
        assert [link["TxnType"] for link in qbo_invoice["LinkedTxn"]] == ["Payment"]
        after = requests.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json()["by_endpoint"]
        # the payment is pushed; the invoice, unchanged in what QuickBooks holds, is not updated
        assert after.get("invoice.update", 0) == before.get("invoice.update", 0)
        assert after.get("payment.create", 0) == before.get("payment.create", 0) + 1


def test_deleting_a_sent_invoice_in_the_crm_voids_it_in_quickbooks(plugin_config, sandbox_url):
    with crm_stack(plugin_config, sandbox_url) as stack:
        invoice = _first_invoice(stack)
        with stack.qbo() as qbo:
            [pushed] = qbo.query_all("Invoice")
        assert stack.api("DELETE", f"/api/invoices/{invoice['id']}").status_code == 204
        stack.sync()
        with stack.qbo() as qbo:
            [kept] = qbo.query_all("Invoice")  # still there, for the accountant's audit trail
        assert (kept["Id"], kept["TotalAmt"], kept["Balance"], kept["DocNumber"]) == (pushed["Id"], 0, 0, pushed["DocNumber"])
        assert kept["PrivateNote"].startswith("Voided")
        stats = requests.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json()["by_endpoint"]
        assert (stats.get("invoice.void"), stats.get("invoice.delete")) == (1, None)
        assert stack.api("GET", f"/api/invoices/{invoice['id']}").status_code == 404  # deleted in the CRM, still
        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        assert (link.status, link.last_error) == (
            "deleted", "deleted in the CRM, so voided in QuickBooks (QuickBooks keeps it for the audit trail)")
