"""Totals to the cent end to end (reference CRM → engine → local Xero) under each way a Xero
organisation prices its sales (its DefaultSalesTax → the invoices' LineAmountTypes): with line
discounts, taxed and untaxed lines, 3-decimal prices and Xero's per-line tax rounding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.links import get_link
from tests.support.xero_stack import BOOKS, XeroStack, xero_crm_stack, xero_sandbox

CARD = "/integrations/quickbooks/"


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _map_gst(stack: XeroStack, tax_id: str) -> None:
    web = stack.sign_in()
    token = re.search(r'data-csrf="([^"]+)"', web.get(CARD).text)
    assert token is not None
    saved = web.patch(CARD + "api/settings", headers={"X-CSRF-Token": token.group(1)},
                      json={"tax_mapping": {tax_id: "OUTPUT2", "none": "NONE"}})
    assert saved.status_code == 200, saved.json


def _invoices(gst: str) -> list[list[dict]]:
    return [
        [{"name": "Design", "quantity": "3", "unit_price": "19.995", "discount": "5.00", "tax_ids": [gst]},
         {"name": "Travel", "quantity": "1", "unit_price": "0.10"},
         {"name": "Hours", "quantity": "2.5", "unit_price": "25.063", "discount": "0.07", "tax_ids": [gst]}],
        # Xero's rounding guide: per line its tax is 3.76 + 3.84 + 3.84 = 11.44; the CRM taxes the total: 11.45.
        [{"name": "A", "quantity": "1", "unit_price": "25.06", "tax_ids": [gst]},
         {"name": "B", "quantity": "1", "unit_price": "25.61", "tax_ids": [gst]},
         {"name": "C", "quantity": "1", "unit_price": "25.63", "tax_ids": [gst]}],
        [{"name": "Mulch", "quantity": "7", "unit_price": "0.333", "discount": "0.01", "tax_ids": [gst]},
         {"name": "Bags", "quantity": "0.75", "unit_price": "3.999"}],
    ]


@pytest.mark.parametrize(("default_sales_tax", "mode"), [
    ("Tax Exclusive", "Exclusive"), ("Tax Inclusive", "Inclusive"), ("No Tax", "NoTax")])
def test_xero_totals_equal_the_crms_to_the_cent(plugin_config, xero_url, default_sales_tax, mode):
    location = {"tax_rates": [{"name": "GST", "rate_percent": "15"}]}
    with xero_crm_stack(plugin_config, xero_url, location=location,
                        org_spec={"default_sales_tax": default_sales_tax}) as stack:
        state = get_state(stack.app)
        conn = connection_for(state.engine, stack.tenant)
        assert conn is not None and conn.tax_model == mode
        gst = stack.location["tax_rates"][0]["id"]
        _map_gst(stack, gst)
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace"}).json
        sent = []
        for lines in _invoices(gst):
            invoice = stack.api("POST", "/api/invoices", json={"contact_id": contact["id"], "lines": lines}).json
            assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
            sent.append(invoice)
        stack.work()
        for invoice in sent:
            link = get_link(state, stack.tenant, "invoice", invoice["id"])
            assert link is not None and link.status == "synced", link and link.last_error
            with stack.xero() as xero:
                pushed = xero.get_invoice(str(link.qbo_id))
            assert pushed["LineAmountTypes"] == mode
            crm_tax = Decimal(invoice["tax_total"]) if mode != "NoTax" else Decimal("0.00")
            assert (pushed["Total"], pushed["TotalTax"]) == (Decimal(invoice["total"]), crm_tax), invoice["number"]
            assert pushed["SubTotal"] == Decimal(invoice["total"]) - crm_tax
        assert Decimal(sent[1]["tax_total"]) == Decimal("11.45")  # and Xero says so too (above)
        assert {k: v for k, v in BOOKS.items() if k != "tax_mapping"} == {
            k: conn.settings[k] for k in BOOKS if k != "tax_mapping"}
