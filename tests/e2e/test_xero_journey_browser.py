"""The demo's second location keeps its books in Xero, in a real browser (Debian's Chromium): sign
in, connect through the Xero sandbox's consent page (pick the organisation), finish setup, send an
invoice and find it in Xero with the CRM's number and total, pay it in the CRM and see it paid in
Xero, pay another in Xero and see it paid in the CRM. Every process is the demo's own (web, worker,
scheduler, both sandboxes, Redis); screenshots land in tests/e2e/artifacts/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.browser import launch_chromium
from tests.support.demo_process import RunningDemo, running_demo

ARTIFACTS = Path(__file__).parent / "artifacts"
SEEDER = "reference-crm-demo-xero-seeder"
ORG = "Kiwi Gardens Ltd"
pytestmark = pytest.mark.browser


def eventually(check: Callable[[], bool], what: str, timeout: float = 60, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout}s")


class Xero:
    """What a person does in Xero, through the Xero sandbox's API with the demo's seeder app.
    The organisation allows 60 calls a minute for every app together: look at it sparingly."""

    EVERY = 3.0  # seconds between looks, so the plugin keeps most of the minute's calls

    def __init__(self, demo: RunningDemo) -> None:
        found = re.search(r"Sandbox Xero:\s+(http://\S+)\s+organisation \"[^\"]+\" \(tenant (\S+)\)", demo.banner)
        assert found is not None, demo.banner
        self.base, self.tenant = found.groups()
        token = requests.post(f"{self.base}/_sandbox/connect", json={"client_id": SEEDER, "tenant_ids": [self.tenant]},
                              timeout=10).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": self.tenant, "Accept": "application/json"}

    def invoice(self, number: str) -> dict[str, Any] | None:
        answer = requests.get(f"{self.base}/api.xro/2.0/Invoices", params={"InvoiceNumbers": number},
                              headers=self.headers, timeout=10)
        answer.raise_for_status()
        rows = answer.json()["Invoices"]
        assert len(rows) <= 1, rows  # never a duplicate
        return rows[0] if rows else None

    def pay(self, invoice_id: str, amount: Decimal) -> None:
        answer = requests.put(f"{self.base}/api.xro/2.0/Payments", headers=self.headers, timeout=10, json={"Payments": [
            {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Amount": str(amount),
             "Date": time.strftime("%Y-%m-%d", time.gmtime())}]})
        assert answer.status_code == 200, answer.text


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"xero-journey-{name}.png"), full_page=True)


def sign_in_to_xero_location(page: Page, demo: RunningDemo) -> None:
    email = re.search(r"Xero location:\s+sign in as (\S+) ", demo.banner).group(1)  # type: ignore[union-attr]
    page.goto(f"{demo.crm_url}/login")
    page.fill("#email", email)
    page.fill("#password", demo.login[1])
    page.click("#sign-in")
    expect(page.get_by_role("link", name="Kate Sheppard")).to_be_visible()  # the location's own contact


def connect_to_xero(page: Page, url: str) -> None:
    page.goto(f"{url}/integrations/quickbooks/")
    expect(page.locator("#status")).to_have_text("Not connected")
    page.click("#connect-xero")
    expect(page.get_by_text("Reference CRM (demo) wants access to your Xero data")).to_be_visible()
    page.get_by_label(ORG).check()  # the consent page: pick the organisation
    shot(page, "1-consent")
    page.get_by_role("button", name="Allow access").click()
    expect(page.locator("#status")).to_have_text("Connected")
    page.wait_for_load_state()  # the card's script (end of body) has run: its controls act
    expect(page.locator("body")).to_contain_text(ORG)


def finish_setup(page: Page) -> None:
    select = page.locator("#revenue-account")
    expect(select.locator("option", has_text="Sales")).to_have_count(1)
    select.select_option(label="Sales (REVENUE)")
    expect(page.locator("#tax-mapping tbody tr")).to_have_count(1)  # the location's one tax: GST
    expect(page.locator("#tax-mapping tbody tr td").first).to_have_text(re.compile(r"^GST \(15(\.0+)?%\)$"))
    gst = page.locator("#tax-mapping select")
    expect(gst.locator("option", has_text="15% GST on Income")).to_have_count(1)
    gst.select_option(label="15% GST on Income")
    page.check("#taxes-confirmed")
    expect(page.locator("#setup-state")).to_have_text("— complete")
    page.reload()
    expect(page.locator("#setup-state")).to_have_text("— complete")  # stored, not just shown
    shot(page, "2-setup-complete")


def send_invoice(page: Page, name: str, sku: str, quantity: str, price: str) -> tuple[str, Decimal]:
    """A new invoice for Kate Sheppard with one GST line, sent; its CRM number and total."""
    page.click("#nav-contacts")
    page.get_by_role("link", name="Kate Sheppard").click()
    page.click("#new-invoice-for-contact")
    page.fill("input[name=line-0-name]", name)
    page.fill("input[name=line-0-sku]", sku)
    page.fill("input[name=line-0-quantity]", quantity)
    page.fill("input[name=line-0-unit_price]", price)
    page.check("input[name=line-0-tax]")
    page.click("#save-invoice")
    total, currency = page.locator("#invoice-total").inner_text().split()
    assert currency == "NZD"
    page.click("#send-invoice")
    expect(page.locator("h1 .badge.sent")).to_have_text("sent")
    number = re.match(r"Invoice (\S+)", page.locator("h1").inner_text()).group(1)  # type: ignore[union-attr]
    return number, Decimal(total)


def test_a_location_keeps_its_books_in_xero(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with running_demo(tmp_path) as demo, sync_playwright() as playwright:
        url, xero = demo.crm_url, Xero(demo)
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            sign_in_to_xero_location(page, demo)
            connect_to_xero(page, url)

            # Connecting imports the organisation's contacts (a company's Name becomes the company);
            # the CRM's own contact is kept.
            def imported() -> bool:
                page.goto(f"{url}/contacts")
                return all(page.get_by_role("link", name=name).count() == 1
                           for name in ("Aroha Ngata", "Tane Mahuta", "Mere Kauri"))
            eventually(imported, "the import of the organisation's contacts")
            rows = {row.locator("td").first.inner_text(): row.locator("td").nth(3).inner_text()
                    for row in page.locator("tbody tr").all()}
            assert rows == {"Aroha Ngata": "", "Tane Mahuta": "Tane Mahuta Nursery", "Mere Kauri": "Kauri Cafe",
                            "Kate Sheppard": "Suffrage Gardens"}
            shot(page, "2a-imported-contacts")
            page.goto(f"{url}/integrations/quickbooks/")
            page.wait_for_load_state()
            finish_setup(page)

            # Sent in the CRM → an AUTHORISED sales invoice in Xero with the CRM's number and total.
            number, total = send_invoice(page, "Hedge trimming", "HEDGE-1", "2", "60.00")
            assert total == Decimal("138.00")  # 120.00 + 15% GST
            invoice_page = page.url
            found: dict[str, Any] = {}

            def in_xero() -> bool:
                found["invoice"] = xero.invoice(number)
                return found["invoice"] is not None
            eventually(in_xero, "the sent invoice reaching Xero", every=Xero.EVERY)
            sent = found["invoice"]
            assert (sent["Type"], sent["Status"], sent["Contact"]["Name"], sent["CurrencyCode"]) == (
                "ACCREC", "AUTHORISED", "Kate Sheppard", "NZD")
            assert (Decimal(str(sent["SubTotal"])), Decimal(str(sent["TotalTax"])), Decimal(str(sent["Total"]))) == (
                Decimal("120.00"), Decimal("18.00"), total)
            shot(page, "3-invoice-sent")

            # Paid in the CRM → paid in Xero, into the bank account.
            page.goto(invoice_page)
            page.click("#record-payment")
            expect(page.locator("h1 .badge.paid")).to_have_text("paid")

            def paid_in_xero() -> bool:
                found["invoice"] = xero.invoice(number)
                return found["invoice"] is not None and found["invoice"]["Status"] == "PAID"
            eventually(paid_in_xero, "the CRM's payment reaching Xero", every=Xero.EVERY)
            paid = found["invoice"]
            assert (Decimal(str(paid["AmountPaid"])), Decimal(str(paid["AmountDue"]))) == (total, Decimal("0"))
            assert [Decimal(str(p["Amount"])) for p in paid["Payments"]] == [total]
            shot(page, "4-paid-in-crm")

            # Paid in Xero → paid in the CRM.
            second, second_total = send_invoice(page, "Lawn mowing", "LAWN-1", "1", "42.50")
            assert second_total == Decimal("48.88")  # 42.50 + 6.375 GST, rounded half up
            second_page = page.url
            eventually(lambda: found.update(invoice=xero.invoice(second)) or found["invoice"] is not None,
                       "the second invoice reaching Xero", every=Xero.EVERY)
            assert Decimal(str(found["invoice"]["Total"])) == second_total
            xero.pay(found["invoice"]["InvoiceID"], second_total)

            def paid_in_crm() -> bool:
                page.goto(second_page)
                return page.locator("h1 .badge.paid").count() == 1
            eventually(paid_in_crm, "Xero's payment reaching the CRM")
            expect(page.locator("#invoice-balance")).to_have_text("0.00")
            shot(page, "5-paid-in-xero")
            assert xero.invoice(number)["Status"] == "PAID"  # nothing loops back  # type: ignore[index]
        finally:
            browser.close()
