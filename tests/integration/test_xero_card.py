"""The card of a Xero location speaks Xero: its page, its JSON and its records name Xero, never
QuickBooks (a QuickBooks location keeps its words)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import connection_for
from reference_crm.state import crm_state
from tests.support.xero_stack import sent_invoice, xero_crm_stack, xero_sandbox

CARD = "/integrations/quickbooks/"
# The words a user reads ("QuickBooks"), not the mount path (/integrations/quickbooks/) or CSS names.
QUICKBOOKS = re.compile(r"QuickBooks|Intuit")


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url



def _said(web, path: str) -> str:
    """The card (the plugin's <main>, not the host CRM's page around it) or a JSON answer, as text."""
    answer = web.get(CARD + path)
    assert answer.status_code == 200, answer.text
    if path:
        return json.dumps(answer.json)
    card = re.search(r'<title>(.*?)</title>.*(<main class="qbo-card.*?</main>)', answer.text, re.S)
    assert card is not None
    return card.group(1) + card.group(2)


def test_a_connected_xero_locations_card_and_its_json_say_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        sent_invoice(stack)
        web = stack.sign_in()
        page = _said(web, "")
        assert QUICKBOOKS.findall(page) == []
        for words in ("<h1>Xero</h1>", 'data-books="Xero"', ">Disconnect Xero</button>", "<dt>Last Xero event</dt>",
                      "Nothing is sent to Xero until you connect again.", '<th scope="col">Xero</th>',
                      "<th scope=\"col\">Xero tax rate</th>"):
            assert words in page
        status = web.get(CARD + "api/status").json
        assert (status["provider"], status["books"]) == ("xero", "Xero")
        history = web.get(CARD + "api/history").json
        assert history[0]["summary"] == "Sent 1 invoice to Xero"
        for path in ("api/status", "api/history", "api/records?status=synced"):
            assert QUICKBOOKS.findall(_said(web, path)) == [], path


def test_a_xero_location_needing_reconnection_says_xero_on_the_card_and_its_records(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        stack.control("POST", "faults", path="/api.xro/", token_error="invalid", times=2)
        sent_invoice(stack)
        conn = connection_for(get_state(stack.app).engine, stack.tenant)
        assert conn is not None and conn.status == "needs_reconnect"
        web = stack.sign_in()
        page = _said(web, "")
        assert ("Xero stopped accepting this connection (it was disconnected at Xero or its authorisation expired)."
                in page)
        assert ">Reconnect to Xero</button>" in page and ">Disconnect Xero instead</button>" in page
        # The one QuickBooks word left is the offer to switch, on its own button.
        assert QUICKBOOKS.findall(page) == ["QuickBooks"]
        assert ">Connect to QuickBooks instead</button>" in page
        status = web.get(CARD + "api/status").json
        assert status["status"] == "needs_reconnect" and status["last_error"]
        assert web.get(CARD + "api/accounts").json == {"error": "Xero needs to be reconnected"}
        for path in ("api/status", "api/history", "api/records"):
            assert QUICKBOOKS.findall(_said(web, path)) == [], path


def test_a_disconnected_xero_location_is_offered_xero_again_and_quickbooks_instead(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        web = stack.sign_in()
        token = re.search(r'id="unlink-form" class="unlink">\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                          web.get(CARD).text)
        assert token is not None
        assert web.post(CARD + "unlink", data={"csrf_token": token.group(1)}).status_code == 303
        page = _said(web, "")
        assert 'id="connect">Connect to QuickBooks instead</button>' in page
        assert 'id="connect-xero">Connect to Xero</button>' in page
        assert QUICKBOOKS.findall(page) == ["QuickBooks"]


def test_the_host_crms_pages_name_xero_for_a_xero_location(plugin_config, xero_url):
    """The reference CRM labels what the plugin tells it (plugin.books_name, RecordSync.books): a
    Xero location's record page says Xero in its sync panel and menu, never QuickBooks."""
    with xero_crm_stack(plugin_config, xero_url) as stack:
        invoice = sent_invoice(stack)
        page = stack.sign_in().get(f"/invoices/{invoice['id']}").text
        panel = re.search(r'<section class="qbo-sync".*?</section>', page, re.S)
        assert panel is not None
        assert 'aria-label="Xero sync status"' in panel.group(0) and ">Xero:</span>" in panel.group(0)
        assert "open in Xero</a>" in panel.group(0) and not QUICKBOOKS.search(panel.group(0))
        assert 'id="nav-quickbooks">Xero</a>' in page
        plugin = crm_state(stack.app).plugin
        with stack.app.app_context():
            assert (plugin.books_name(stack.tenant), plugin.books_name("no-such-location")) == ("Xero", None)
