"""The card lets a location connect to Xero instead of QuickBooks: consent at (the local) Xero with
PKCE, the callback stores a Xero connection, and the location's invoices then go to Xero."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from crm_qbo_plugin import QuickBooksPlugin
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.xero import ReconnectRequired
from tests.support.xero_stack import BOOKS, xero_crm_stack, xero_sandbox
from tests.xero_sandbox.support import approve

CARD = "/integrations/quickbooks/"
CARD_CSRF = re.compile(r'id="connect-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"')


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _start(web) -> str:
    page = web.get(CARD)
    assert page.status_code == 200
    assert 'id="connect-xero"' in page.text
    token = CARD_CSRF.search(page.text)
    assert token is not None
    answer = web.post(CARD + "connect", data={"csrf_token": token.group(1), "provider": "xero"})
    assert answer.status_code == 303
    return str(answer.headers["Location"])


def _callback(web, params: dict[str, str]):
    return web.get(CARD + "xero/callback?" + urllib.parse.urlencode(params))


def test_a_location_connects_to_xero_from_the_card_and_its_invoices_go_there(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, connected=False) as stack:
        web = stack.sign_in()
        consent = _start(web)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(consent).query))
        assert (query["code_challenge_method"], query["response_type"]) == ("S256", "code")
        back = approve(consent, stack.org)
        done = _callback(web, back)
        assert done.status_code == 303, done.text
        state = get_state(stack.app)
        conn = connection_for(state.engine, stack.tenant)
        assert conn is not None
        assert (conn.provider, conn.realm_id, conn.status, conn.home_currency) == ("xero", stack.org, "connected", "NZD")
        state_row_reused = _callback(web, back)  # the state is single use
        assert state_row_reused.status_code == 400
        saved = web.patch(CARD + "api/settings", json=BOOKS, headers={"X-CSRF-Token": _csrf(web)})
        assert saved.status_code == 200, saved.json
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace"}).json
        invoice = stack.api("POST", "/api/invoices", json={
            "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "42.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        stack.work()
        with stack.xero() as xero:
            pushed = xero.find_invoice_by_number(stack.api("GET", f"/api/invoices/{invoice['id']}").json["number"])
        assert pushed is not None and pushed["Total"] == Decimal("42.00")


def _csrf(web) -> str:
    token = re.search(r'data-csrf="([^"]+)"', web.get(CARD).text)
    assert token is not None
    return token.group(1)


def test_a_forged_or_cancelled_xero_callback_stores_nothing(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, connected=False) as stack:
        web = stack.sign_in()
        consent = _start(web)
        state_value = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(consent).query))["state"]
        forged = _callback(web, {"state": "not-the-state", "code": "abc"})
        assert forged.status_code == 400
        cancelled = _callback(web, {"state": state_value, "error": "access_denied"})
        assert cancelled.status_code == 400
        assert "cancelled at Xero" in cancelled.text
        assert connection_for(get_state(stack.app).engine, stack.tenant) is None or \
            connection_for(get_state(stack.app).engine, stack.tenant).realm_id is None
        assert requests.get(f"{xero_url}/_sandbox/stats", timeout=10).json()["token_endpoint_calls"] == 0


def test_a_xero_locations_card_settings_are_checked_against_the_organisation(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        web = stack.sign_in()
        refused = web.patch(CARD + "api/settings", headers={"X-CSRF-Token": _csrf(web)}, json={
            "revenue_account_id": "090", "payment_account_id": "200", "tax_mapping": {"none": "NOPE"}})
        assert refused.status_code == 400, refused.json
        assert refused.json["fields"] == {
            "revenue_account_id": "not the code of an active revenue account of the connected organisation",
            "payment_account_id": "not the code of an active bank account of the connected organisation",
            "tax_mapping": "unknown Xero tax type(s): NOPE"}
        conn = connection_for(get_state(stack.app).engine, stack.tenant)
        assert conn is not None and {k: conn.settings[k] for k in BOOKS} == BOOKS  # nothing changed
        accepted = web.patch(CARD + "api/settings", headers={"X-CSRF-Token": _csrf(web)},
                             json={"revenue_account_id": "200", "payment_account_id": "090"})
        assert accepted.status_code == 200, accepted.json


def test_a_xero_locations_card_lists_its_accounts_and_tax_types_and_syncs_now(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        web = stack.sign_in()
        assert web.get(CARD).status_code == 200
        status = web.get(CARD + "api/status")
        assert status.status_code == 200, status.json
        accounts = web.get(CARD + "api/accounts")
        assert accounts.status_code == 200, accounts.json
        assert {"id": "200", "name": "Sales", "account_type": "REVENUE"} in accounts.json
        assert all(a["id"] != "090" for a in accounts.json)  # the bank account is no revenue account
        taxes = web.get(CARD + "api/tax-codes")
        assert taxes.status_code == 200 and "NONE" in {t["id"] for t in taxes.json}
        synced = web.post(CARD + "api/sync-now", headers={"X-CSRF-Token": _csrf(web)})
        assert synced.status_code == 202, synced.json
        queued = get_state(stack.app).queue.jobs
        assert [j.func_name for j in queued] == ["crm_qbo_plugin.jobs.inbound_tasks.poll_xero_connection"]
        stack.work()


def test_disconnecting_a_xero_location_revokes_its_grant_at_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        state = get_state(stack.app)
        conn = connection_for(state.engine, stack.tenant)
        assert conn is not None and conn.refresh_token_enc is not None
        refresh = state.cipher.decrypt(conn.refresh_token_enc)
        web = stack.sign_in()
        page = web.get(CARD).text
        token = re.search(r'id="unlink-form" class="unlink">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        assert web.post(CARD + "unlink", data={"csrf_token": token.group(1)}).status_code == 303
        after = connection_for(state.engine, stack.tenant)
        assert after is not None and (after.status, after.realm_id, after.refresh_token_enc) == ("disconnected", None, None)
        assert "Xero was disconnected." in web.get(CARD).text
        assert state.xero_identity is not None
        with pytest.raises(ReconnectRequired):  # the grant is gone at Xero, not just here
            state.xero_identity.refresh(refresh)


def test_a_xero_locations_records_link_to_their_pages_in_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace"}).json
        invoice = stack.api("POST", "/api/invoices", json={
            "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "42.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        stack.work()
        number = stack.api("GET", f"/api/invoices/{invoice['id']}").json["number"]
        web = stack.sign_in()
        records = web.get(CARD + "api/records?kind=invoice&status=synced")
        assert records.status_code == 200, records.json
        [row] = records.json
        assert row["qbo_title"] == f"Xero invoice {number}"
        assert row["qbo_url"] == f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={row['qbo_id']}"
        with stack.app.app_context():
            badge = QuickBooksPlugin().record_sync(stack.tenant, "invoice", invoice["id"])
        assert badge is not None and (badge.status, badge.qbo_url) == ("synced", row["qbo_url"])
