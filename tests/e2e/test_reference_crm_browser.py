"""The reference CRM in a real browser (Debian's Chromium): sign in, create a contact and an
invoice, send it, and reach the QuickBooks card through Settings → Integrations → QuickBooks.
Screenshots land in tests/e2e/artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from qbo_sandbox.server import BackgroundServer
from reference_crm.app import create_app
from tests.support.browser import launch_chromium
from tests.support.reference_crm_app import close, crm_config, new_location, outbox

ARTIFACTS = Path(__file__).parent / "artifacts"
pytestmark = pytest.mark.browser


@pytest.fixture
def served_crm(plugin_config):
    app = create_app(crm_config(plugin_config))
    location = new_location(app.test_client(), "Harbour", tax_rates=[{"name": "Sales tax", "rate_percent": "8"}])
    server = BackgroundServer(app).start()
    yield app, server.url, location
    server.stop()
    close(app)


def test_sign_in_invoice_a_new_contact_and_open_the_quickbooks_card(served_crm):
    app, url, location = served_crm
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        refused = []  # what the Content-Security-Policy blocked (an inline style or script would be)
        page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None)
        try:
            page.goto(f"{url}/invoices")
            expect(page).to_have_url(f"{url}/login?next=/invoices")
            page.fill("#email", location["login"]["email"])
            page.fill("#password", "wrong password")
            page.click("#sign-in")
            expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")
            page.fill("#email", location["login"]["email"])
            page.fill("#password", "correct horse battery")
            page.click("#sign-in")
            expect(page).to_have_url(f"{url}/invoices")

            page.click("#nav-contacts")
            page.click("#new-contact")
            page.fill("#first_name", "Mary")
            page.fill("#last_name", "Jackson")
            page.fill("#email", "mary@example")  # the browser accepts it; the server does not
            page.click("#save-contact")
            expect(page.locator(".field-error")).to_have_text("Not a valid email address.")
            page.fill("#email", "mary.jackson@example.com")
            page.fill("#company", "Langley")
            page.click("#save-contact")
            expect(page.get_by_role("heading", level=1)).to_have_text("Mary Jackson")
            page.screenshot(path=str(ARTIFACTS / "reference_crm_contact.png"), full_page=True)

            page.click("#new-invoice-for-contact")
            page.fill("input[name=line-0-name]", "Wind tunnel hours")
            page.fill("input[name=line-0-sku]", "WT-1")
            page.fill("input[name=line-0-quantity]", "3")
            page.fill("input[name=line-0-unit_price]", "19.995")
            page.fill("input[name=line-0-discount]", "5")
            page.check("input[name=line-0-tax]")
            page.fill("input[name=line-1-name]", "Report")
            page.fill("input[name=line-1-quantity]", "1")
            page.fill("input[name=line-1-unit_price]", "40")
            page.screenshot(path=str(ARTIFACTS / "reference_crm_invoice_form.png"), full_page=True)
            page.click("#save-invoice")
            # 59.99 − 5.00 = 54.99, tax 8% = 4.40; + 40.00 → 99.39
            expect(page.locator("#invoice-total")).to_have_text("99.39 USD")
            expect(page.locator(".badge.draft")).to_have_text("draft")
            page.click("#send-invoice")
            expect(page.get_by_role("status")).to_have_text("Invoice INV-1001 sent.")
            expect(page.locator(".badge.sent")).to_have_text("sent")
            page.screenshot(path=str(ARTIFACTS / "reference_crm_invoice_sent.png"), full_page=True)

            page.hover("#nav-settings")
            page.click("#nav-quickbooks")
            expect(page).to_have_url(f"{url}/integrations/quickbooks/")
            expect(page.locator("#connect")).to_have_text("Connect to QuickBooks")
            page.screenshot(path=str(ARTIFACTS / "reference_crm_quickbooks_card.png"), full_page=True)
        finally:
            browser.close()

    assert [row[1] for row in outbox(app)] == ["contact.created", "invoice.sent"]
    assert refused == []


def test_void_and_delete_ask_for_confirmation_in_the_browser(served_crm):
    app, url, location = served_crm
    client, auth = app.test_client(), location["auth"]
    contact = client.post("/api/contacts", headers=auth, json={"first_name": "Kay"}).json
    invoice = client.post("/api/invoices", headers=auth, json={
        "contact_id": contact["id"], "lines": [{"name": "Work", "quantity": "1", "unit_price": "10"}]}).json
    client.post(f"/api/invoices/{invoice['id']}/send", headers=auth)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        try:
            page.goto(f"{url}/invoices/{invoice['id']}")
            page.fill("#email", location["login"]["email"])
            page.fill("#password", "correct horse battery")
            page.click("#sign-in")
            page.click("#delete-invoice")
            expect(page.get_by_role("heading", level=1)).to_have_text("Delete invoice INV-1001?")
            expect(page.locator("#confirm-text")).to_contain_text("QuickBooks keeps it, voided")
            page.click("#cancel-action")
            expect(page.locator(".badge.sent")).to_have_text("sent")  # nothing happened
            page.click("#void-invoice")
            expect(page.get_by_role("heading", level=1)).to_have_text("Void invoice INV-1001?")
            page.click("#confirm-action")
            expect(page.get_by_role("status")).to_have_text("Invoice INV-1001 voided.")
            expect(page.locator(".badge.void")).to_have_text("void")
        finally:
            browser.close()
    assert [row[1] for row in outbox(app)] == ["contact.created", "invoice.sent", "invoice.voided"]
