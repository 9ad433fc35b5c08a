"""A Xero refresh token rotated out and used after Xero's 30-minute grace: the connection needs
reconnecting (the card says so), the CRM changes made meanwhile wait in the outbox, and after
reconnecting on the card they reach Xero exactly once."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.tables import OutboxEvent
from tests.support.xero_stack import XeroStack, sent_invoice, xero_crm_stack, xero_sandbox
from tests.xero_sandbox.support import approve

CARD = "/integrations/quickbooks/"
GRACE_AND_ACCESS = 31 * 60  # past the old refresh token's grace and the access token's 30 minutes


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url



def _rotate_out_the_stored_refresh_token(stack: XeroStack) -> None:
    """Xero rotates the stored refresh token (a refresh whose answer was lost, so its successor was
    never saved), then the grace and the access token run out."""
    state = get_state(stack.app)
    conn = connection_for(state.engine, stack.tenant)
    assert conn is not None and conn.refresh_token_enc is not None and state.xero_identity is not None
    state.xero_identity.refresh(state.cipher.decrypt(conn.refresh_token_enc))
    stack.control("POST", "clock", advance_seconds=GRACE_AND_ACCESS)


def test_a_rotated_out_refresh_token_needs_reconnecting_and_the_changes_meanwhile_arrive_once(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        before = sent_invoice(stack, "Ada")
        _rotate_out_the_stored_refresh_token(stack)
        meanwhile = sent_invoice(stack, "Grace")
        state = get_state(stack.app)
        conn = connection_for(state.engine, stack.tenant)
        assert conn is not None and conn.status == "needs_reconnect"
        with Session(state.engine) as db:
            waiting = db.exec(select(OutboxEvent.status).where(OutboxEvent.subject_id == meanwhile["id"])).all()
        assert waiting == ["pending"]
        web = stack.sign_in()
        page = web.get(CARD).text
        assert "Xero stopped accepting this connection" in page and ">Reconnect to Xero</button>" in page
        record = web.get(CARD + f"api/records/invoice/{meanwhile['id']}").json
        assert (record["status"], record["last_error"]) == (
            "pending", "waiting for Xero to be reconnected; it is sent by itself once you reconnect")

        token = re.search(r'id="connect-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        consent = web.post(CARD + "connect", data={"csrf_token": token.group(1), "provider": "xero"})
        assert consent.status_code == 303
        back = approve(str(consent.headers["Location"]), stack.org)
        done = web.get(CARD + "xero/callback?" + urllib.parse.urlencode(back))
        assert done.status_code == 303, done.text
        stack.work()
        stack.work()  # a second pass finds nothing more to send
        conn = connection_for(state.engine, stack.tenant)
        assert conn is not None and conn.status == "connected"
        with stack.xero() as xero:
            numbers = [inv["InvoiceNumber"] for page in xero.changed("Invoices", datetime(2000, 1, 1, tzinfo=UTC)) for inv in page]
        assert sorted(numbers) == sorted([before["number"], meanwhile["number"]])
        with Session(state.engine) as db:
            assert db.exec(select(OutboxEvent.status).where(OutboxEvent.subject_id == meanwhile["id"])).all() == ["done"]
