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
from crm_qbo_plugin.outbound.held import WAITING_FOR_RECONNECT
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.outbound.sweeper import sweep_outbox
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import connection_for
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


def test_a_contact_already_in_xero_is_matched_by_email_then_by_name_never_doubled(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        with stack.xero() as xero:
            by_email = xero.save_contact({"Name": "A. Lovelace (bookkeeper's spelling)", "EmailAddress": "ADA@example.com"},
                                         request_id="seed-1", create_only=True)
            by_name = xero.save_contact({"Name": "Grace Hopper"}, request_id="seed-2", create_only=True)
        ada = _contact(stack)
        grace = stack.api("POST", "/api/contacts", json={"first_name": "Grace", "last_name": "Hopper"}).json
        _sent_invoice(stack, ada, [{"name": "Gardening", "quantity": "1", "unit_price": "10.00"}])
        _sent_invoice(stack, grace, [{"name": "Gardening", "quantity": "1", "unit_price": "20.00"}])
        state = get_state(stack.app)
        ada_link = get_link(state, stack.tenant, "contact", ada["id"])
        grace_link = get_link(state, stack.tenant, "contact", grace["id"])
        assert ada_link is not None and grace_link is not None
        assert (ada_link.qbo_id, grace_link.qbo_id) == (by_email["ContactID"], by_name["ContactID"])
        assert stack.stats().get("contacts.put") == 2  # the two seeded above; the plugin created none


def test_a_contact_edit_reaches_its_linked_xero_contact(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        ada = _contact(stack)
        _sent_invoice(stack, ada, [{"name": "Gardening", "quantity": "1", "unit_price": "10.00"}])
        edited = stack.api("PATCH", f"/api/contacts/{ada['id']}", json={"email": "ada@lovelace.example"})
        assert edited.status_code == 200, edited.json
        stack.work()
        link = get_link(get_state(stack.app), stack.tenant, "contact", ada["id"])
        assert link is not None and link.qbo_id is not None
        with stack.xero() as xero:
            assert xero.get_contact(link.qbo_id)["EmailAddress"] == "ada@lovelace.example"


def test_a_payment_for_no_invoice_becomes_a_paid_sales_invoice_in_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        ada = _contact(stack)
        paid = stack.api("POST", "/api/payments", json={
            "source": "order_form", "contact_id": ada["id"], "amount": "45.50",
            "lines": [{"name": "Seeds", "quantity": "2", "unit_price": "12.75"},
                      {"name": "Pot", "quantity": "1", "unit_price": "20.00"}]})
        assert paid.status_code == 201, paid.json
        stack.work()
        sale = _invoice(stack, f"CRM-SALE-{paid.json['id']}")
        assert (sale["Status"], sale["Total"], sale["AmountDue"]) == ("PAID", Decimal("45.50"), Decimal("0.00"))
        link = get_link(get_state(stack.app), stack.tenant, "sales_receipt", paid.json["id"])
        assert link is not None and (link.qbo_id, link.status) == (sale["InvoiceID"], "synced")


def test_what_xero_refuses_is_a_visible_failure_with_what_to_do(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, revenue_account_id="999") as stack:  # no such account
        invoice = _sent_invoice(stack, _contact(stack), [{"name": "Gardening", "quantity": "1", "unit_price": "10.00"}])
        state = get_state(stack.app)
        link = get_link(state, stack.tenant, "invoice", invoice["id"])
        assert link is not None and link.status == "failed" and link.qbo_id is None
        assert link.last_error is not None and link.last_error.startswith("Xero refused the invoice: ")
        assert link.last_error.endswith("; correct it in the CRM or in Xero, then retry")
        row = stack.api("GET", f"/api/invoices/{invoice['id']}").json
        assert row["status"] == "sent"
        with Session(state.engine) as db:
            [status] = db.exec(select(OutboxEvent.status).where(OutboxEvent.subject_id == invoice["id"])).all()
        assert status == "failed"


def test_a_connection_xero_refuses_needs_reconnecting_and_its_work_waits(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        stack.control("POST", "faults", path="/api.xro/", token_error="invalid", times=2)
        invoice = _sent_invoice(stack, _contact(stack), [{"name": "Gardening", "quantity": "1", "unit_price": "10.00"}])
        state = get_state(stack.app)
        conn = connection_for(state.engine, stack.tenant)
        assert conn is not None and conn.status == "needs_reconnect"
        with Session(state.engine) as db:
            [waiting] = db.exec(select(OutboxEvent).where(OutboxEvent.subject_id == invoice["id"])).all()
        assert (waiting.status, waiting.last_error) == ("pending", WAITING_FOR_RECONNECT)
        with stack.xero() as xero:
            assert xero.find_invoice_by_number(invoice["number"]) is None


def test_a_phone_only_edit_reaches_the_xero_contact(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        ada = _contact(stack)
        _sent_invoice(stack, ada, [{"name": "Gardening", "quantity": "1", "unit_price": "10.00"}])
        edited = stack.api("PATCH", f"/api/contacts/{ada['id']}", json={"phone": "+64 21 555 0100"})
        assert edited.status_code == 200, edited.json
        stack.work()
        link = get_link(get_state(stack.app), stack.tenant, "contact", ada["id"])
        assert link is not None and link.qbo_id is not None
        with stack.xero() as xero:
            phones = {p["PhoneType"]: p.get("PhoneNumber") for p in xero.get_contact(link.qbo_id)["Phones"]}
        assert phones["DEFAULT"] == "+64 21 555 0100"


def test_lines_carry_the_xero_item_their_sku_or_name_names_and_items_are_never_created(plugin_config, xero_url):
    """Items by code: a line whose SKU is an item's Code, or (without a SKU) whose name is an item's
    Name, is sent with that ItemCode; any other line goes without one, and no item is made."""
    with xero_crm_stack(plugin_config, xero_url) as stack:
        with stack.xero() as xero:
            made = xero.save_items([{"Code": "HEDGE-1", "Name": "Hedge trimming"},
                                    {"Code": "MULCH", "Name": "Mulch"}], request_id="bookkeeper-items")
            assert all(item.ok for item in made)
        contact = _contact(stack)
        invoice = _sent_invoice(stack, contact, [
            {"name": "Trimming", "sku": "HEDGE-1", "quantity": "2", "unit_price": "60.00"},
            {"name": "mulch", "quantity": "1", "unit_price": "5.00"},
            {"name": "Gardening", "sku": "GARDEN", "quantity": "1", "unit_price": "10.00"}])
        pushed = _invoice(stack, invoice["number"])
        assert [(line["Description"], line.get("ItemCode")) for line in pushed["LineItems"]] == [
            ("Trimming", "HEDGE-1"), ("mulch", "MULCH"), ("Gardening", None)]
        assert pushed["Total"] == Decimal(invoice["total"])
        with stack.xero() as xero:
            assert sorted(item["Code"] for item in xero.items()) == ["HEDGE-1", "MULCH"]
