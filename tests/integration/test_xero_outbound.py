"""A Xero location's outbound through the shipped stack: the reference CRM, the plugin's engine
(outbox, decision, claim/finish, link book, write ledger) and an in-process worker, against
xero_sandbox. What a CRM user does lands in Xero once, with the CRM's number and total."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.links import get_link
from tests.support.xero_stack import XeroStack, xero_crm_stack, xero_sandbox


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _contact(stack: XeroStack, email: str = "ada@example.com") -> dict:
    answer = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace", "email": email})
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def _sent_invoice(stack: XeroStack, contact: dict, lines: list[dict]) -> dict:
    invoice = stack.api("POST", "/api/invoices", json={"contact_id": contact["id"], "lines": lines}).json
    assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
    stack.work()
    return dict(stack.api("GET", f"/api/invoices/{invoice['id']}").json)


def test_a_sent_invoice_lands_in_xero_with_its_number_and_total_to_the_cent(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = _contact(stack)
        invoice = _sent_invoice(stack, contact, [{"name": "Gardening", "quantity": "3", "unit_price": "33.33"},
                                                 {"name": "Mulch", "quantity": "1", "unit_price": "0.01"}])
        with stack.xero() as xero:
            [found] = xero.find_contacts(email="ada@example.com")
            pushed = xero.find_invoice_by_number(invoice["number"])
        assert pushed is not None
        assert (pushed["Type"], pushed["Status"], pushed["InvoiceNumber"]) == ("ACCREC", "AUTHORISED", invoice["number"])
        assert pushed["Total"] == Decimal(invoice["total"]) == Decimal("100.00")
        assert pushed["Contact"]["ContactID"] == found["ContactID"]
        assert found["Name"] == "Ada Lovelace"
        state = get_state(stack.app)
        invoice_link = get_link(state, stack.tenant, "invoice", invoice["id"])
        contact_link = get_link(state, stack.tenant, "contact", contact["id"])
        assert invoice_link is not None and contact_link is not None
        assert (invoice_link.qbo_id, invoice_link.status) == (pushed["InvoiceID"], "synced")
        assert (contact_link.qbo_id, contact_link.status) == (found["ContactID"], "synced")
