"""The card as a product (issue #17, first half) in Debian's Chromium, on the reference CRM with the
sandbox and a real worker: a health header, records named as the user knows them and linked both
ways, search and paging with the true total, history in plain language with what to do about a
failure, only sensible actions (Ignore asks first), a 360-px phone layout, every control labelled
and reachable by keyboard. Screenshots land in tests/e2e/screenshots/ (a few are committed and
shown in the README)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import SyncRun
from crm_qbo_plugin.store.types import utcnow
from qbo_sandbox.server import BackgroundServer
from tests.integration.test_held_and_local_changes import World
from tests.support.browser import launch_chromium
from tests.support.reference_crm_app import close

SCREENSHOTS = Path(__file__).parent / "screenshots"
QBO_APP = "https://app.sandbox.qbo.intuit.com/app"
pytestmark = pytest.mark.browser


@pytest.fixture
def books(plugin_config, sandbox_url):
    """Ada with 8 invoices and Grace with 2, all in QuickBooks; then the books close and a 9th
    invoice of Ada's is refused."""
    w = World(plugin_config, sandbox_url)
    w.connect()
    ada = w.crm("POST", "/contacts", {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"})
    grace = w.crm("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.example"})
    invoices = [w.sent_invoice(ada["id"], price=f"{10 + n}.00") for n in range(8)]
    invoices += [w.sent_invoice(grace["id"], price="17.50") for _ in range(2)]
    w.work()
    closed = (date.today() + timedelta(days=30)).isoformat()
    assert requests.patch(f"{w.sandbox}/_sandbox/companies/{w.realm}", json={"books_closed_date": closed},
                          timeout=10).status_code == 200
    late = w.sent_invoice(ada["id"], price="5.00")
    w.work()
    server = BackgroundServer(w.app).start()
    yield w, server.url, invoices, late
    server.stop()
    close(w.app)


def sign_in(page, url: str) -> None:
    page.goto(f"{url}/login?next=/integrations/quickbooks/")
    page.fill("#email", "owner@downtown.example.com")
    page.fill("#password", "correct horse battery")
    page.click("#sign-in")
    expect(page.locator("#status")).to_have_text("Connected")
    page.wait_for_load_state()  # the card's script (end of body) has run: its buttons act


def test_a_user_reads_searches_pages_and_fixes_records_on_the_card(books):
    w, url, invoices, late = books
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        sign_in(page, url)
        health = page.locator("#health")
        expect(health).to_have_text("Last synced just now · 1 needs attention")
        expect(page.locator("#setup")).not_to_have_attribute("open", "")  # the finished setup is collapsed
        expect(page.locator("#records tbody tr")).to_have_count(1)
        page.screenshot(path=str(SCREENSHOTS / "card-overview.png"), full_page=True)

        history = page.locator("#history-list > li").first
        expect(history).to_contain_text("Sent 10 invoices to QuickBooks · 1 could not be sent · just now")
        expect(history.locator("li.failure")).to_contain_text(
            f"Invoice {late['number']} · Ada Lovelace: QuickBooks books are closed for ")
        expect(history.locator("li.failure")).to_contain_text(
            "Once the date is in an open period (or the period is reopened in QuickBooks), press Retry.")
        expect(history.locator("li.failure a")).to_have_attribute("href", f"/invoices/{late['id']}")

        synced = page.locator("#record-tabs button[data-status='synced']")
        expect(synced.locator(".count")).to_have_text("(12)")
        synced.click()
        rows = page.locator("#records tbody tr")
        expect(rows).to_have_count(10)
        expect(page.locator("#records-range")).to_have_text("1–10 of 12")
        expect(page.locator("#records-prev")).to_be_disabled()
        newest = invoices[-1]
        first = rows.first
        expect(first).to_contain_text(f"Invoice {newest['number']} · Grace Hopper · 35.00 USD")
        expect(first.get_by_role("link", name=f"Invoice {newest['number']}")).to_have_attribute("href", f"/invoices/{newest['id']}")
        qbo_id = w.api("GET", "/records/invoice/" + newest["id"])["qbo_id"]
        doc_number = w.qbo("GET", f"invoice/{qbo_id}")["Invoice"]["DocNumber"]  # QuickBooks' number, not its id
        qbo_link = first.get_by_role("link", name=f"QuickBooks invoice {doc_number}")
        expect(qbo_link).to_have_attribute("href", f"{QBO_APP}/invoice?txnId={qbo_id}")
        expect(first.get_by_role("button")).to_have_count(0)  # nothing to retry on a synced row
        page.click("#records-next")
        expect(page.locator("#records-range")).to_have_text("11–12 of 12")
        expect(rows).to_have_count(2)
        expect(page.locator("#records-next")).to_be_disabled()
        page.click("#records-prev")
        expect(page.locator("#records-range")).to_have_text("1–10 of 12")

        page.fill("#record-search", "hopper")
        page.press("#record-search", "Enter")
        expect(page.locator("#records-range")).to_have_text("1–3 of 3")
        expect(rows.nth(2)).to_contain_text("Grace Hopper · grace@navy.example")
        page.fill("#record-search", invoices[3]["number"])
        page.click("#record-search-go")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(f"Invoice {invoices[3]['number']} · Ada Lovelace · 26.00 USD")
        page.screenshot(path=str(SCREENSHOTS / "card-records-search.png"))

        errors = page.locator("#errors-list > li")
        expect(errors).to_have_count(1)
        expect(errors.first).to_contain_text(f"Invoice {late['number']} · Ada Lovelace · 10.00 USD")
        expect(errors.first).to_contain_text("(or the period is reopened in QuickBooks), press Retry.")
        ignore = errors.first.get_by_role("button", name=f"Ignore Invoice {late['number']}")
        page.once("dialog", lambda dialog: dialog.dismiss())  # Ignore asks first; Cancel changes nothing
        ignore.click()
        expect(errors.first.get_by_role("button", name=f"Retry Invoice {late['number']}")).to_be_visible()
        assert w.api("GET", f"/records/invoice/{late['id']}")["status"] == "failed"
        page.once("dialog", lambda dialog: dialog.accept())
        ignore.click()
        expect(page.locator("#errors-list")).to_have_text("Nothing needs your attention.")
        expect(health).to_have_text("Last synced just now · nothing needs attention")
        assert w.api("GET", f"/records/invoice/{late['id']}")["status"] == "ignored"
        browser.close()


def test_the_card_fits_a_360_px_phone_and_every_control_is_labelled_and_reachable_by_keyboard(books):
    _w, url, _invoices, late = books
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 360, "height": 780})
        sign_in(page, url)
        expect(page.locator("#health")).to_contain_text("1 needs attention")
        expect(page.locator("#records tbody tr")).to_have_count(1)
        page.screenshot(path=str(SCREENSHOTS / "card-phone.png"))
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        unlabelled = page.locator("#card").evaluate("""card => [...card.querySelectorAll('button, input, select, a')]
            .filter(el => el.offsetParent !== null)
            .filter(el => !((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.textContent.trim()))
            .map(el => el.outerHTML)""")
        assert unlabelled == []
        reached = []

        def tab_to(wanted: str) -> None:
            for _ in range(25):
                page.keyboard.press("Tab")
                here = page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")
                reached.append(here)
                if here == wanted or here.startswith(wanted):
                    return
            raise AssertionError((wanted, reached))

        page.locator("#overview-title").click()
        for wanted in ("sync-now", "record-search", "record-search-go", "Synced (12)"):
            tab_to(wanted)
        page.keyboard.press("Enter")  # the Synced tab, by keyboard
        expect(page.locator("#records-range")).to_have_text("1–10 of 12")
        tab_to("records-next")
        page.keyboard.press("Enter")
        expect(page.locator("#records-range")).to_have_text("11–12 of 12")
        tab_to("Retry")  # in Errors
        page.evaluate("window.qboCard.refresh()")  # what the card does every 5 s keeps the focus where it is
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == f"Retry Invoice {late['number']}"
        for wanted in ("Ignore", "Setup — complete"):  # then Settings
            tab_to(wanted)
        page.keyboard.press("Enter")  # opens the collapsed setup
        for wanted in ("revenue-account", "taxes-confirmed", "auto-sync", "review-request", "unlink"):
            tab_to(wanted)
        page.click("a[href='#errors']")
        expect(page.locator("#errors")).to_be_in_viewport()
        browser.close()


def test_import_progress_shows_its_pace_and_time_left_and_follows_the_running_import(books):
    w, url, _invoices, _late = books
    state = get_state(w.app)
    with session(state.engine) as db:
        run = SyncRun(tenant_id=w.tenant, kind="import", started_at=utcnow() - timedelta(seconds=100),
                      counts={"customers_total": 100, "customers_done": 50, "invoices_total": 100, "invoices_done": 0})
        db.add(run)
        db.commit()
        run_id = run.id

    def progress(counts: dict[str, int], finished: bool = False) -> None:
        with session(state.engine) as db:
            row = db.get(SyncRun, run_id)
            assert row is not None
            row.counts = counts
            if finished:
                row.status, row.finished_at = "succeeded", utcnow()
            db.add(row)
            db.commit()

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        sign_in(page, url)
        text = page.locator("#import-text")
        expect(page.locator("#import-title")).to_have_text("Importing from QuickBooks")
        expect(text).to_have_text(re.compile(r"^50 of 200 records \(50 customers, 0 invoices\) · 0\.[45] records/s · about [56] min left$"))
        progress({"customers_total": 100, "customers_done": 100, "invoices_total": 100, "invoices_done": 50})
        expect(text).to_have_text(re.compile(r"^150 of 200 records \(100 customers, 50 invoices\) · 1\.[45] records/s · about \d+ s left$"))
        expect(page.locator("#import-progress")).to_have_attribute("aria-valuenow", "75")
        page.locator("#overview").screenshot(path=str(SCREENSHOTS / "card-import.png"))
        progress({"customers_total": 100, "customers_done": 100, "invoices_total": 100, "invoices_done": 100}, finished=True)
        expect(page.locator("#import-title")).to_have_text("Imported from QuickBooks")
        expect(text).to_have_text("100 customers, 100 invoices · just now")
        browser.close()
