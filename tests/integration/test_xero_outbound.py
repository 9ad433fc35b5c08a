"""A Xero location's outbound through the shipped stack: the reference CRM, the plugin's engine
(outbox, decision, claim/finish, link book, write ledger) and an in-process worker, against
xero_sandbox. What a CRM user does lands in Xero once, with the CRM's number and total."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from crm_qbo_plugin.outbound import xero_invoices
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.outbound.sweeper import sweep_outbox
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.tables import OutboxEvent
from crm_qbo_plugin.store.types import utcnow
from tests.support.xero_stack import XeroStack, xero_crm_stack, xero_sandbox

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _contact(stack: XeroStack, email: str = "ada@example.com") -> dict:
    answer = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace", "email": email})
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def _sent_invoice(stack: XeroStack, contact: dict, lines: list[dict]) -> dict:
    invoice = stack.api("POST", "/api/invoices", json={"contact_id": contact["id"], "lines": lines}).json
    assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
    stack.work()
    return dict(stack.api("GET", f"/api/invoices/{invoice['id']}").json)


def test_a_sent_invoice_lands_in_xero_with_its_number_and_total_to_the_cent(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = _contact(stack)
        invoice = _sent_invoice(stack, contact, [{"name": "Gardening", "quantity": "3", "unit_price": "33.33"},
                                                 {"name": "Mulch", "quantity": "1", "unit_price": "0.01"}])
        with stack.xero() as xero:
            [found] = xero.find_contacts(email="ada@example.com")
            pushed = xero.find_invoice_by_number(invoice["number"])
        assert pushed is not None
        assert (pushed["Type"], pushed["Status"], pushed["InvoiceNumber"]) == ("ACCREC", "AUTHORISED", invoice["number"])
        assert pushed["Total"] == Decimal(invoice["total"]) == Decimal("100.00")
        assert pushed["Contact"]["ContactID"] == found["ContactID"]
        assert found["Name"] == "Ada Lovelace"
        state = get_state(stack.app)
        invoice_link = get_link(state, stack.tenant, "invoice", invoice["id"])
        contact_link = get_link(state, stack.tenant, "contact", contact["id"])
        assert invoice_link is not None and contact_link is not None
        assert (invoice_link.qbo_id, invoice_link.status) == (pushed["InvoiceID"], "synced")
        assert (contact_link.qbo_id, contact_link.status) == (found["ContactID"], "synced")


def _invoice(stack: XeroStack, number: str) -> dict:
    with stack.xero() as xero:
        found = xero.find_invoice_by_number(number)
        assert found is not None
        return xero.get_invoice(found["InvoiceID"])


def test_an_edit_after_sending_updates_the_same_xero_invoice(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        invoice = _sent_invoice(stack, _contact(stack), [{"name": "Gardening", "quantity": "2", "unit_price": "35.00"}])
        before = _invoice(stack, invoice["number"])
        edited = stack.api("PATCH", f"/api/invoices/{invoice['id']}", json={
            "lines": [{"name": "Gardening", "quantity": "3", "unit_price": "35.00"},
                      {"name": "Hedge trimming", "quantity": "1", "unit_price": "12.50"}]})
        assert edited.status_code == 200, edited.json
        stack.work()
        after = _invoice(stack, invoice["number"])
        assert after["InvoiceID"] == before["InvoiceID"]
        assert after["Total"] == Decimal(edited.json["total"]) == Decimal("117.50")
        assert [line["LineItemID"] for line in after["LineItems"]][0] == before["LineItems"][0]["LineItemID"]
        with stack.xero() as xero:
            assert [i["InvoiceID"] for page in xero.changed("Invoices", EPOCH) for i in page] == [before["InvoiceID"]]


def test_voiding_and_deleting_a_sent_invoice_voids_it_in_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = _contact(stack)
        voided = _sent_invoice(stack, contact, [{"name": "Gardening", "quantity": "1", "unit_price": "70.00"}])
        deleted = _sent_invoice(stack, contact, [{"name": "Mowing", "quantity": "1", "unit_price": "20.00"}])
        assert stack.api("POST", f"/api/invoices/{voided['id']}/void").status_code == 200
        assert stack.api("DELETE", f"/api/invoices/{deleted['id']}").status_code == 204
        stack.work()
        assert _invoice(stack, voided["number"])["Status"] == "VOIDED"
        with stack.xero() as xero:
            [kept] = [i for page in xero.changed("Invoices", EPOCH) for i in page
                      if i["InvoiceNumber"] == deleted["number"]]
        assert kept["Status"] == "VOIDED"  # kept for the audit trail, never deleted
        state = get_state(stack.app)
        voided_link = get_link(state, stack.tenant, "invoice", voided["id"])
        deleted_link = get_link(state, stack.tenant, "invoice", deleted["id"])
        assert voided_link is not None and deleted_link is not None
        assert (voided_link.status, voided_link.detail.get("voided")) == ("synced", True)
        assert (deleted_link.status, deleted_link.last_error) == (
            "deleted", "deleted in the CRM, so voided in Xero (Xero keeps it for the audit trail)")


def test_a_payment_against_a_sent_invoice_is_applied_in_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        invoice = _sent_invoice(stack, _contact(stack), [{"name": "Gardening", "quantity": "2", "unit_price": "35.00"}])
        paid = stack.api("POST", "/api/payments", json={"source": "invoice", "invoice_id": invoice["id"],
                                                        "amount": "30.00"})
        assert paid.status_code == 201, paid.json
        stack.work()
        in_xero = _invoice(stack, invoice["number"])
        assert (in_xero["AmountPaid"], in_xero["AmountDue"], in_xero["Status"]) == (
            Decimal("30.00"), Decimal("40.00"), "AUTHORISED")
        [listed] = in_xero["Payments"]
        link = get_link(get_state(stack.app), stack.tenant, "payment", paid.json["id"])
        assert link is not None
        assert (link.qbo_id, link.status) == (listed["PaymentID"], "synced")


class WorkerKilled(BaseException):
    """Stands for the worker process dying: nothing in the plugin catches it."""


def _outbox_id(stack: XeroStack, event_type: str, subject_id: str) -> int:
    with Session(get_state(stack.app).engine) as db:
        row = db.exec(select(OutboxEvent).where(OutboxEvent.tenant_id == stack.tenant,
                                                OutboxEvent.event_type == event_type,
                                                OutboxEvent.subject_id == subject_id)).one()
        assert row.id is not None
        return row.id


def test_a_worker_killed_after_xero_created_the_invoice_leaves_one_invoice(plugin_config, xero_url, monkeypatch):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = _contact(stack)
        stack.work()  # the contact's own event: not billable yet, skipped
        invoice = stack.api("POST", "/api/invoices", json={
            "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "2", "unit_price": "35.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        outbox_id = _outbox_id(stack, "invoice.sent", invoice["id"])
        state = get_state(stack.app)
        real = xero_invoices.record_writes

        def killed(*args, **kwargs):
            raise WorkerKilled()

        monkeypatch.setattr(xero_invoices, "record_writes", killed)
        with stack.app.app_context(), pytest.raises(WorkerKilled):
            process(state, outbox_id)  # Xero created the invoice; the link was never saved
        assert stack.stats().get("invoices.put") == 1
        monkeypatch.setattr(xero_invoices, "record_writes", real)
        for key in state.redis.scan_iter("crm-qbo:push:*"):  # the dead worker's locks expire with its lease
            state.redis.delete(key)
        with stack.app.app_context():
            assert process(state, outbox_id, now=utcnow() + timedelta(hours=1)) == "done"
        with stack.xero() as xero:
            pushed = [i for page in xero.changed("Invoices", EPOCH) for i in page]
        assert [(i["InvoiceNumber"], i["Total"]) for i in pushed] == [(invoice["number"], Decimal("70.00"))]
        assert stack.stats().get("invoices.put") == 1
        link = get_link(state, stack.tenant, "invoice", invoice["id"])
        assert link is not None and (link.qbo_id, link.status) == (pushed[0]["InvoiceID"], "synced")


def test_a_429_storm_delays_pushes_but_loses_none(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = _contact(stack)
        stack.work()
        stack.control("POST", "faults", path="/api.xro/", rate_limit="minute", retry_after=1, times=6)
        invoices = []
        for n in range(5):
            made = stack.api("POST", "/api/invoices", json={
                "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": f"{10 + n}.25"}]}).json
            assert stack.api("POST", f"/api/invoices/{made['id']}/send").status_code == 200
            invoices.append(stack.api("GET", f"/api/invoices/{made['id']}").json)
        state = get_state(stack.app)
        later = utcnow()
        for _ in range(10):  # each round: run what is due, then let the backoffs run out
            stack.work()
            later += timedelta(hours=1)
            with stack.app.app_context():
                sweep_outbox(state, now=later)
        assert stack.control("GET", "faults")["faults"][0]["fired"] == 6
        with stack.xero() as xero:
            pushed = {i["InvoiceNumber"]: i["Total"] for page in xero.changed("Invoices", EPOCH) for i in page}
        assert pushed == {i["number"]: Decimal(i["total"]) for i in invoices}
        assert stack.stats().get("invoices.put") == 5
        with Session(state.engine) as db:
            rows = db.exec(select(OutboxEvent.status).where(OutboxEvent.tenant_id == stack.tenant,
                                                            OutboxEvent.event_type == "invoice.sent")).all()
        assert rows == ["done"] * 5
