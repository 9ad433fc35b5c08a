"""Retry on an invoice change held while disconnected, after the invoice's payment: Xero already
holds the invoice's body, so nothing is written (Xero refuses to edit an invoice with a payment
allocated — the soak saw this Retry fail) and the record is synced again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from crm_qbo_plugin.onboarding.lifecycle import resume_parked, unlink
from crm_qbo_plugin.outbound.records import retry_record
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.tables import OutboxEvent
from crm_qbo_plugin.store.types import utcnow
from tests.support.xero_stack import connect_xero, xero_crm_stack, xero_sandbox


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def test_retrying_a_paid_invoices_held_change_is_not_refused_by_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                            "email": "ada@example.com"}).json
        invoice = stack.api("POST", "/api/invoices", json={"contact_id": contact["id"], "lines": [
            {"name": "Gardening", "quantity": "1", "unit_price": "100.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        stack.work()
        state = get_state(stack.app)
        with stack.app.app_context():
            unlink(state, stack.tenant)  # the card's Disconnect
        paid = stack.api("POST", "/api/payments", json={"source": "invoice", "invoice_id": invoice["id"], "amount": "30.00"})
        assert paid.status_code == 201
        stack.work()  # held: not synced while disconnected
        connect_xero(stack.app, stack.tenant, stack.xero_url, stack.org)  # reconnect, same organisation
        with stack.app.app_context():
            resume_parked(state, stack.tenant, utcnow())
            retry_record(state, stack.tenant, "payment", paid.json["id"])
            retry_record(state, stack.tenant, "invoice", invoice["id"])
        stack.work()
        with Session(state.engine) as db:
            rows = db.exec(select(OutboxEvent).where(OutboxEvent.tenant_id == stack.tenant)).all()
        assert [(r.event_type, r.last_error) for r in rows if r.status == "failed"] == []
        link = get_link(state, stack.tenant, "invoice", invoice["id"])
        assert link is not None and link.status == "synced", link.last_error
