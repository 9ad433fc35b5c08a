"""The integration card in a real browser: connect through the sandbox's consent page, finish
setup, flip a toggle and see it persist, disconnect. Screenshots land in tests/e2e/artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from crm_qbo_plugin import HostUser
from crm_qbo_plugin.onboarding.lifecycle import get_connection
from crm_qbo_plugin.state import get_state
from qbo_sandbox.server import BackgroundServer
from tests.support.browser import launch_chromium
from tests.support.plugin_app import create_app
from tests.support.redis_server import free_port
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

ARTIFACTS = Path(__file__).parent / "artifacts"
pytestmark = pytest.mark.browser


@pytest.fixture
def served_card(plugin_config, fake_host, sandbox_url):
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/integrations/quickbooks/callback"
    register_app(sandbox_url, redirect_uris=[redirect])
    config = {**plugin_config, **plugin_overrides(sandbox_url), "CRM_QBO_REDIRECT_URI": redirect, "SECRET_KEY": "card-test"}
    app = create_app(config, fake_host)
    fake_host.user = HostUser(id="u-1", tenant="loc-1", name="Alice")
    server = BackgroundServer(app, port=port).start()
    yield app, server.url, sandbox_url
    server.stop()
    get_state(app).engine.dispose()


def test_connect_set_up_toggle_and_disconnect_in_the_browser(served_card):
    app, url, sandbox = served_card
    create_company(sandbox, name="Acme Books")
    ARTIFACTS.mkdir(exist_ok=True)
    card = f"{url}/integrations/quickbooks/"
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.goto(card)
        expect(page.locator("#status")).to_have_text("Not connected")
        page.screenshot(path=str(ARTIFACTS / "card-1-not-connected.png"), full_page=True)
        page.check("#import-invoices")
        page.click("#connect")
        page.get_by_label("Acme Books").check()  # the sandbox's consent page
        page.get_by_role("button", name="Connect").click()
        expect(page.locator("#status")).to_have_text("Connected")
        page.wait_for_load_state()  # the card's script (end of body) has run: its buttons act
        expect(page.locator("#company")).to_have_text("Acme Books")
        expect(page.locator("#setup-state")).to_have_text("— needs your attention")
        page.screenshot(path=str(ARTIFACTS / "card-2-connected-setup.png"), full_page=True)
        select = page.locator("#revenue-account")
        expect(select.locator("option")).not_to_have_count(1)
        income = select.locator("option").nth(1).get_attribute("value")
        select.select_option(income)
        page.check("#taxes-confirmed")
        expect(page.locator("#setup-state")).to_have_text("— complete")
        page.uncheck("#auto-sync")
        expect(page.locator("#setup-state")).to_have_text("— complete")
        page.reload()
        expect(page.locator("#auto-sync")).not_to_be_checked()
        expect(page.locator("#revenue-account")).to_have_value(income)
        page.screenshot(path=str(ARTIFACTS / "card-3-set-up.png"), full_page=True)
        settings = get_connection(get_state(app), "loc-1").settings
        assert (settings["auto_sync"], settings["revenue_account_id"], settings["taxes_confirmed"], settings["import_invoices"]) == (
            False, income, True, True)
        page.click("#unlink")
        page.screenshot(path=str(ARTIFACTS / "card-4-unlink-confirm.png"), full_page=True)
        page.click("#unlink-yes")
        expect(page.locator("#status")).to_have_text("Not connected")
        expect(page.locator("#connect")).to_have_text("Connect to QuickBooks")
        page.screenshot(path=str(ARTIFACTS / "card-5-disconnected.png"), full_page=True)
        page.set_viewport_size({"width": 360, "height": 780})  # the connect form fits a phone too
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        browser.close()
    assert get_connection(get_state(app), "loc-1").status == "disconnected"


def test_the_card_shows_changes_held_while_disconnected_and_crm_only_invoices(served_card, fake_host):
    from crm_qbo_plugin import EventType, HostEvent, QuickBooksPlugin
    from crm_qbo_plugin.outbound.processor import process
    from crm_qbo_plugin.store.links import set_status
    from tests.integration.outbound_helpers import invoice

    app, url, sandbox = served_card
    state = get_state(app)
    create_company(sandbox, name="Acme Books")
    card = f"{url}/integrations/quickbooks/"
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})

        def connect() -> None:
            page.goto(card)
            page.click("#connect")
            page.get_by_label("Acme Books").check()
            page.get_by_role("button", name="Connect").click()
            expect(page.locator("#status")).to_have_text("Connected")
            page.wait_for_load_state()  # the card's script (end of body) has run: its buttons act

        connect()
        page.click("#unlink")
        expect(page.locator("#unlink-confirm")).to_be_visible()
        expect(page.locator("#unlink-confirm")).to_contain_text("not sent by themselves after you reconnect")
        page.click("#unlink-yes")
        expect(page.locator("#status")).to_have_text("Not connected")
        fake_host.invoices[("loc-1", "inv-7")] = invoice("inv-7")
        with app.app_context():
            outbox_id = QuickBooksPlugin().publish("loc-1", HostEvent(type=EventType.INVOICE_SENT, subject_id="inv-7",
                                                                     key="sent-7")).outbox_id
        assert process(state, outbox_id) == "skipped"
        set_status(state, "loc-1", "invoice", "inv-q", "crm_only", "deleted in the CRM only: QuickBooks owns this "
                   "invoice and still has it")
        page.reload()
        expect(page.locator("#held-note")).to_contain_text("1 change(s) made while QuickBooks was disconnected")

        connect()
        held_tab = page.locator("#record-tabs button[data-status='not_synced']")
        expect(held_tab.locator(".count")).to_have_text("(1)")
        held_tab.click()
        rows = page.locator("#records tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Invoice inv-7")
        expect(rows.first).to_contain_text("not synced — sent while QuickBooks was disconnected; Retry sends it to QuickBooks")
        expect(rows.first.get_by_role("button", name="Retry")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "card-6-not-synced.png"), full_page=True)
        page.locator("#record-tabs button[data-status='crm_only']").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("deleted in the CRM only: QuickBooks owns this invoice and still has it")
        expect(rows.first.get_by_role("button")).to_have_count(0)
        browser.close()
