"""A newcomer's journey through the demo (`crm-demo`) in a real browser (Debian's Chromium): sign in,
connect through the sandbox's consent page with "Import invoices" on, watch the import bring in the
company's customers, finish setup, send an invoice and find it in QuickBooks, add a customer in
QuickBooks and find it in the CRM, flip a toggle and see it persist, disconnect. Every process is
real (web, worker, scheduler, sandbox, Redis); screenshots land in tests/e2e/artifacts/."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.browser import launch_chromium
from tests.support.demo_process import running_demo

ARTIFACTS = Path(__file__).parent / "artifacts"
SEEDER = "reference-crm-demo-seeder"
pytestmark = pytest.mark.browser


def eventually(check: Callable[[], bool], what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout}s")


class QuickBooks:
    """What a person does in QuickBooks, through the sandbox's REST API."""

    def __init__(self, base: str, realm: str) -> None:
        token = requests.post(f"{base}/_sandbox/tokens", json={"realm_id": realm, "client_id": SEEDER}, timeout=10).json()
        self.api = f"{base}/v3/company/{realm}"
        self.headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"}

    def query(self, statement: str) -> list[dict]:
        answer = requests.get(f"{self.api}/query", params={"query": statement, "minorversion": "75"}, headers=self.headers, timeout=10)
        answer.raise_for_status()
        body = answer.json()["QueryResponse"]
        return next((rows for key, rows in body.items() if isinstance(rows, list)), [])

    def create(self, entity: str, body: dict) -> dict:
        answer = requests.post(f"{self.api}/{entity.lower()}", params={"minorversion": "75"}, json=body, headers=self.headers, timeout=10)
        answer.raise_for_status()
        return answer.json()[entity]


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"journey-{name}.png"), full_page=True)


def test_a_newcomers_journey_through_the_demo(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with running_demo(tmp_path) as demo, sync_playwright() as playwright:
        url, (email, password) = demo.crm_url, demo.login
        qbo = QuickBooks(demo.sandbox_url, demo.realm)
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            page.goto(f"{url}/login")
            page.fill("#email", email)
            page.fill("#password", password)
            page.click("#sign-in")
            page.hover("#nav-settings")
            page.click("#nav-quickbooks")
            expect(page.locator("#status")).to_have_text("Not connected")
            shot(page, "1-card-not-connected")

            page.check("#import-invoices")
            page.click("#connect")
            expect(page.get_by_text("Sandbox Company US").first).to_be_visible()  # the consent page
            shot(page, "2-consent")
            page.get_by_label("Sandbox Company US").check()
            page.get_by_role("button", name="Connect").click()
            expect(page.locator("#status")).to_have_text("Connected")
            page.wait_for_load_state()  # the card's script (end of body) has run: its buttons act
            expect(page.locator("#import")).to_be_visible()  # progress while it runs, the result after
            expect(page.locator("#import-text")).to_contain_text("customers")
            shot(page, "3-connected-importing")

            def imported() -> bool:
                page.goto(f"{url}/contacts")
                return page.get_by_text("Amy's Bird Sanctuary").count() > 0 and page.get_by_text("Cool Cars").count() > 0
            eventually(imported, "the import of the company's customers")
            shot(page, "4-imported-contacts")

            def invoices_imported() -> bool:
                page.goto(f"{url}/invoices")
                return page.locator("tbody tr").count() >= 3 and page.get_by_text("QuickBooks").count() >= 3
            eventually(invoices_imported, "the import of the company's invoices")
            shot(page, "4b-imported-invoices")

            page.goto(f"{url}/integrations/quickbooks/")
            select = page.locator("#revenue-account")
            expect(select.locator("option")).not_to_have_count(1)
            select.select_option(index=1)
            page.check("#taxes-confirmed")
            expect(page.locator("#setup-state")).to_have_text("— complete")
            page.uncheck("#auto-sync")
            expect(page.locator("#setup-state")).to_have_text("— complete")
            page.reload()
            expect(page.locator("#auto-sync")).not_to_be_checked()  # the toggle persisted
            shot(page, "5-setup-complete")

            page.click("#nav-contacts")
            page.get_by_role("link", name="Ada Lovelace").click()
            page.click("#new-invoice-for-contact")
            page.fill("input[name=line-0-name]", "Gardening")
            page.fill("input[name=line-0-sku]", "GARD-1")
            page.fill("input[name=line-0-quantity]", "2")
            page.fill("input[name=line-0-unit_price]", "35.00")
            page.click("#save-invoice")
            total = page.locator("#invoice-total").inner_text().split()[0]
            page.click("#send-invoice")
            expect(page.locator(".badge.sent")).to_have_text("sent")

            def in_quickbooks() -> bool:
                ada = [c["Id"] for c in qbo.query("SELECT * FROM Customer WHERE DisplayName LIKE 'Ada%'")]
                return any(i["CustomerRef"]["value"] in ada and Decimal(str(i["TotalAmt"])) == Decimal(total)
                           for i in qbo.query("SELECT * FROM Invoice"))
            eventually(in_quickbooks, "the sent invoice reaching QuickBooks with the CRM's total")
            shot(page, "6-invoice-sent")

            qbo.create("Customer", {"DisplayName": "Grace Hopper", "PrimaryEmailAddr": {"Address": "grace@navy.example"}})

            def arrived() -> bool:
                page.goto(f"{url}/contacts")
                return page.get_by_text("Grace Hopper").count() > 0
            eventually(arrived, "the QuickBooks customer reaching the CRM")
            shot(page, "7-customer-from-quickbooks")

            page.goto(f"{url}/integrations/quickbooks/")
            expect(page.locator("#history-list")).to_contain_text("Sent 1 invoice to QuickBooks")
            expect(page.locator("#history-list")).to_contain_text("Received 1 change from QuickBooks")
            expect(page.locator("#webhook-health")).not_to_have_text("—")
            shot(page, "8-card-after-sync")
            page.click("#unlink")
            page.click("#unlink-yes")
            expect(page.locator("#status")).to_have_text("Not connected")
            expect(page.locator("#connect")).to_have_text("Connect to QuickBooks")
            shot(page, "9-disconnected")
        finally:
            browser.close()
