"""`crm-qbo reconcile` for a Xero location: after a real sync through the reference CRM and
xero_sandbox the books match (exit 0); differences made afterwards on either side are listed in the
same shape as for QuickBooks (exit 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo

from crm_qbo_plugin.cli import plugin_cli
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.links import get_link
from tests.support.xero_stack import XeroStack, xero_crm_stack, xero_sandbox


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _cli(stack: XeroStack, *args: str):
    return CliRunner().invoke(plugin_cli, ["reconcile", stack.tenant, *args],
                              obj=ScriptInfo(create_app=lambda: stack.app))


def _sent(stack: XeroStack, contact_id: str, amount: str) -> dict:
    invoice = stack.api("POST", "/api/invoices", json={
        "contact_id": contact_id, "lines": [{"name": "Gardening", "quantity": "1", "unit_price": amount}]}).json
    assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
    return dict(invoice)


def test_a_xero_locations_books_match_after_a_sync_and_later_differences_are_listed(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        ada = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                       "email": "ada@example.com"}).json
        invoice = _sent(stack, ada["id"], "80.00")
        stack.work()
        assert stack.api("POST", "/api/payments", json={"source": "invoice", "invoice_id": invoice["id"],
                                                        "amount": "30.00"}).status_code == 201
        assert stack.api("POST", "/api/payments", json={
            "source": "order_form", "contact_id": ada["id"], "amount": "12.00",
            "lines": [{"name": "Seeds", "quantity": "1", "unit_price": "12.00"}]}).status_code == 201
        stack.work()

        clean = _cli(stack)
        assert clean.exit_code == 0, clean.output
        assert "compared 1 contacts, 1 invoices, 1 sales receipts, 1 payments" in clean.output
        assert clean.output.rstrip().endswith("the books match")

        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        assert link is not None and link.qbo_id
        with stack.xero() as xero:  # the bookkeeper takes a payment and adds a contact in Xero …
            xero.create_payment({"Invoice": {"InvoiceID": link.qbo_id}, "Account": {"Code": "090"},
                                 "Date": "2026-12-03", "Amount": Decimal("20.00")}, request_id="bookkeeper-1")
            stray = xero.save_contact({"Name": "Walk-in Customer"}, request_id="bookkeeper-2",
                                      create_only=True)["ContactID"]
        unsent = _sent(stack, ada["id"], "15.00")  # … and an invoice sent in the CRM has not gone yet
        drifted = _cli(stack, "--json")
        assert drifted.exit_code == 1, drifted.output
        report = json.loads(drifted.output)
        assert (report["matches"], report["compared"]) == (
            False, {"contacts": 1, "invoices": 1, "sales_receipts": 1, "payments": 1})
        found = {(d["kind"], d["problem"], d["crm_id"], d["qbo_id"], d["crm_value"], d["qbo_value"])
                 for d in report["differences"]}
        assert found == {
            ("invoice", "amount_paid", invoice["id"], link.qbo_id, "30.00", "50.00"),
            ("customer", "missing_in_crm", None, stray, None, "Walk-in Customer"),
            ("invoice", "not_synced", unsent["id"], None, None, None),
        }
        text = _cli(stack)
        assert text.exit_code == 1
        assert f"invoice CRM {invoice['id']} / Xero {link.qbo_id}: amount paid: CRM 30.00 vs Xero 50.00" in text.output
        assert text.output.rstrip().endswith("3 difference(s)")
