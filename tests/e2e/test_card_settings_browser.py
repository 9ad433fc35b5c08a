"""Issue 17's settings and record badges in a real browser (Debian's Chromium), on the reference CRM
connected to the sandbox: a failed invoice fixed from its own page, tax mapping on a Canadian
company pushed with the mapped codes, manual export with automatic export off, and a field mapping
applied to a pushed invoice. Small screenshots land in tests/e2e/screenshots/."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from crm_qbo_plugin.onboarding.lifecycle import get_connection
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.card_settings import card_settings
from tests.support.browser import launch_chromium
from tests.support.crm_stack import PASSWORD, CrmStack, crm_stack

SHOTS = Path(__file__).parent / "screenshots"
pytestmark = pytest.mark.browser


def sign_in(page: Page, stack: CrmStack, path: str) -> None:
    page.goto(stack.url + path)
    page.fill("#email", stack.location["login"]["email"])
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page).to_have_url(stack.url + path)


def shot(page: Page, name: str) -> None:
    """The record page's heading and QuickBooks badge, small."""
    top, badge = page.locator(".heading").bounding_box(), page.locator("#qbo-sync").bounding_box()
    assert top is not None and badge is not None
    bottom = badge["y"] + badge["height"] + 8
    page.screenshot(path=str(SHOTS / f"{name}.png"), clip={"x": 0, "y": top["y"] - 8, "width": 900,
                                                           "height": bottom - top["y"] + 8})


def sent_invoice(stack: CrmStack, contact_id: str, **extra: Any) -> dict[str, Any]:
    body = {"contact_id": contact_id, "lines": [{"name": "Survey", "quantity": "2", "unit_price": "17.50"}], **extra}
    made = stack.api("POST", "/api/invoices", json=body)
    assert made.status_code == 201, made.json
    assert stack.api("POST", f"/api/invoices/{made.json['id']}/send").status_code == 200
    return dict(made.json)


def set_books_closed(stack: CrmStack, day: str | None) -> None:
    answer = requests.patch(f"{stack.sandbox_url}/_sandbox/companies/{stack.realm}", json={"books_closed_date": day},
                            timeout=10)
    assert answer.status_code == 200, answer.text


def test_a_failed_invoice_fixed_from_its_page_then_manual_export_with_a_field_mapping(plugin_config, sandbox_url):
    SHOTS.mkdir(exist_ok=True)
    with crm_stack(plugin_config, sandbox_url, taxes_confirmed=True) as stack, sync_playwright() as pw:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                            "email": "ada@example.com"}).json
        set_books_closed(stack, "2026-11-30")
        closed = sent_invoice(stack, contact["id"], issue_date="2026-11-15")
        stack.sync()
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 900, "height": 700})
        try:
            sign_in(page, stack, f"/invoices/{closed['id']}")
            badge = page.locator("#qbo-sync")
            expect(page.locator("#qbo-sync-status")).to_have_text("failed")
            expect(page.locator("#qbo-sync-reason")).to_have_text(
                "— QuickBooks books are closed for 2026-11-15, change the date or reopen the period")
            expect(badge.get_by_role("button", name="Retry")).to_be_visible()
            shot(page, "invoice-failed-books-closed")

            set_books_closed(stack, None)  # the bookkeeper reopens the period
            badge.get_by_role("button", name="Retry").click()
            expect(page.get_by_role("status")).to_have_text("Sending to QuickBooks again.")
            stack.sync()
            page.reload()
            expect(page.locator("#qbo-sync-status")).to_have_text("synced")
            expect(page.locator("#qbo-sync-reason")).to_have_count(0)
            expect(badge.get_by_role("button")).to_have_count(0)
            link = page.locator("#qbo-open")
            expect(link).to_have_text("open in QuickBooks")
            with stack.qbo() as qbo:
                pushed = qbo.query_all("Invoice", where=[])
            assert [row["TxnDate"] for row in pushed] == ["2026-11-15"]
            assert link.get_attribute("href") == f"https://app.sandbox.qbo.intuit.com/app/invoice?txnId={pushed[0]['Id']}"
            shot(page, "invoice-synced")

            page.click("text=Ada Lovelace")  # the contact's page shows its own badge
            expect(page.locator("#qbo-sync-status")).to_have_text("synced")
            with stack.qbo() as qbo:
                (customer,) = qbo.query_all("Customer", where=[])
            expect(page.locator("#qbo-open")).to_have_attribute(
                "href", f"https://app.sandbox.qbo.intuit.com/app/customerdetail?nameId={customer['Id']}")

            page.goto(stack.url + "/integrations/quickbooks/")
            explainer = page.locator("label:has(#taxes-confirmed) + #tax-explainer")  # right next to the box
            expect(explainer).to_contain_text("QuickBooks will therefore report no sales tax collected on those invoices")
            page.uncheck("#export-on-send")
            expect(page.locator("#sync-options")).to_have_attribute("data-saved", "1")
            page.select_option("#map-invoice-number", "PrivateNote")
            expect(page.locator("#sync-options")).to_have_attribute("data-saved", "2")
            page.fill("#sync-from", "2026-01-01")  # a closed period before it
            expect(page.locator("#sync-options")).to_have_attribute("data-saved", "3")
            page.reload()
            expect(page.locator("#sync-from")).to_have_value("2026-01-01")
            expect(page.locator("#export-on-send")).not_to_be_checked()
            expect(page.locator("#map-invoice-number")).to_have_value("PrivateNote")
            saved = card_settings(get_connection(get_state(stack.app), stack.tenant))
            assert (saved.export_on_send, dict(saved.field_mapping), saved.sync_from) == (
                False, {"invoice.number": "PrivateNote", "contact.id": "none"}, date(2026, 1, 1))
            page.locator("#sync-options").screenshot(path=str(SHOTS / "card-settings.png"))

            manual = sent_invoice(stack, contact["id"])
            stack.sync()
            page.goto(f"{stack.url}/invoices/{manual['id']}")
            expect(page.locator("#qbo-sync-status")).to_have_text("not exported")
            expect(page.locator("#qbo-sync-reason")).to_have_text(
                "— automatic export is off, Send to QuickBooks exports it")
            expect(badge.get_by_role("button", name="Retry")).to_have_count(0)
            with stack.qbo() as qbo:
                assert len(qbo.query_all("Invoice", where=[])) == 1  # nothing exported by itself
            shot(page, "invoice-not-exported")
            badge.get_by_role("button", name="Send to QuickBooks").click()
            expect(page.get_by_role("status")).to_have_text(f"Invoice {manual['number']} is on its way to QuickBooks.")
            stack.sync()
            page.reload()
            expect(page.locator("#qbo-sync-status")).to_have_text("synced")
            with stack.qbo() as qbo:
                rows = {row["TxnDate"] + row["PrivateNote"]: row for row in qbo.query_all("Invoice", where=[])}
            assert len(rows) == 2
            exported = next(row for row in rows.values() if manual["id"] in row["PrivateNote"])
            assert exported["PrivateNote"] == f"CRM ref: {stack.tenant}/{manual['id']} · Invoice {manual['number']}"
            assert exported["TotalAmt"] in (35, 35.0, "35.00")
        finally:
            browser.close()


def test_tax_mapping_on_a_canadian_company_pushes_the_mapped_codes(plugin_config, sandbox_url):
    SHOTS.mkdir(exist_ok=True)
    location = {"currency": "CAD", "tax_rates": [{"name": "GST", "rate_percent": "5"}, {"name": "HST ON", "rate_percent": "13"}]}
    with crm_stack(plugin_config, sandbox_url, company={"country": "CA"}, location=location) as stack, \
            sync_playwright() as pw:
        gst, hst = (tax["id"] for tax in stack.location["tax_rates"])
        with stack.qbo() as qbo:
            codes = {row["Name"]: str(row["Id"]) for row in qbo.query_all("TaxCode", where=[])}
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 900, "height": 900})
        try:
            sign_in(page, stack, "/contacts")
            page.goto(stack.url + "/integrations/quickbooks/")
            table = page.locator("#tax-mapping")
            expect(table).to_be_visible()
            expect(page.locator("label:has(#taxes-confirmed) + #tax-explainer")).to_contain_text(
                "Map each CRM tax rate to a QuickBooks tax code")
            gst_select, hst_select = table.locator(f"select[data-crm-tax='{gst}']"), table.locator(f"select[data-crm-tax='{hst}']")
            gst_code, hst_code = next(c for n, c in codes.items() if "GST" in n), next(c for n, c in codes.items() if "HST" in n)
            for select, code in ((gst_select, gst_code), (hst_select, hst_code)):
                # each choice is saved before the next (a changed mapping asks for the taxes to be confirmed again)
                with page.expect_response(lambda r: r.url.endswith("/api/settings") and r.request.method == "PATCH") as saved:
                    select.select_option(code)
                assert saved.value.status == 200
                expect(select).to_have_value(code)
            page.check("#taxes-confirmed")
            expect(page.locator("#setup-state")).to_have_text("— complete")
            page.locator("#setup").screenshot(path=str(SHOTS / "card-tax-mapping-ca.png"))
        finally:
            browser.close()
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Grace", "email": "grace@example.ca"}).json
        made = sent_invoice(stack, contact["id"], currency="CAD", lines=[
            {"name": "Survey", "quantity": "1", "unit_price": "100", "tax_ids": [gst]},
            {"name": "Report", "quantity": "1", "unit_price": "200", "tax_ids": [hst]}])
        stack.sync()
        with stack.qbo() as qbo:
            (pushed,) = qbo.query_all("Invoice", where=[])
        lines = [line for line in pushed["Line"] if line["DetailType"] == "SalesItemLineDetail"]
        assert [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in lines] == [gst_code, hst_code]
        assert made["total"] == "331.00"
