"""What changes in Xero about an invoice the CRM sent comes back by the modified-since poll, and
the plugin's own writes do not come back as changes (no loop)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from crm_qbo_plugin.automations.overdue import fire_overdue
from crm_qbo_plugin.inbound.xero_poll import poll_xero
from crm_qbo_plugin.jobs.scheduler import plugin_jobs
from crm_qbo_plugin.outbound import xero_invoices
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.links import get_link, link_by_qbo_id
from crm_qbo_plugin.store.tables import InboxNotice, OutboxEvent
from crm_qbo_plugin.store.types import utcnow
from crm_qbo_plugin.xero import XeroClient
from tests.support.xero_stack import (
    WEBHOOK_KEY,
    WEBHOOK_PATH,
    XeroStack,
    xero_crm_stack,
    xero_sandbox,
)
from tests.xero_sandbox.support import CLIENT_ID


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _sent(stack: XeroStack, total: str) -> dict:
    contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                       "email": "ada@example.com"}).json
    invoice = stack.api("POST", "/api/invoices", json={
        "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": total}]}).json
    assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
    stack.work()
    return dict(invoice)


def _poll(stack: XeroStack):
    with stack.app.app_context():
        return poll_xero(get_state(stack.app), stack.tenant)


def test_a_payment_and_a_void_made_in_xero_reach_the_crm_invoice(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        invoice = _sent(stack, "70.00")
        other = _sent(stack, "20.00")
        first = _poll(stack)
        assert (first.status, first.applied) == ("polled", 0)  # only our own writes so far
        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        other_link = get_link(get_state(stack.app), stack.tenant, "invoice", other["id"])
        assert link is not None and other_link is not None
        stack.control("POST", "clock", advance_seconds=5)  # the bookkeeper works a little later
        with stack.xero() as xero:
            xero.create_payment({"Invoice": {"InvoiceID": link.qbo_id}, "Account": {"Code": "090"},
                                 "Date": "2026-12-03", "Amount": Decimal("25.00")}, request_id="bookkeeper-1")
            xero.void_invoice(str(other_link.qbo_id), request_id="bookkeeper-2")
        before = stack.stats()
        polled = _poll(stack)
        assert (polled.status, polled.applied) == ("polled", 2)
        paid = stack.api("GET", f"/api/invoices/{invoice['id']}").json
        assert (paid["status"], Decimal(paid["amount_paid"])) == ("partially_paid", Decimal("25.00"))
        assert stack.api("GET", f"/api/invoices/{other['id']}").json["status"] == "void"
        stack.work()  # what the CRM recorded from Xero is not pushed back
        after = stack.stats()
        writes = ("invoices.post", "invoices.put", "payments.put")
        assert {k: after.get(k, 0) for k in writes} == {k: before.get(k, 0) for k in writes}
        assert _poll(stack).applied == 0  # nothing new


def test_the_scheduler_polls_each_connected_xero_organisation(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        state = get_state(stack.app)
        jobs = {job.name: job for job in plugin_jobs(state, stack.app.app_context)}
        assert jobs["xero-poll"].run() == 1  # one poll queued: this location's
        assert jobs["cdc-poll"].run() == 0  # QuickBooks' CDC poll never takes it
        stack.work()


def test_xero_webhooks_pass_intent_to_receive_and_bring_a_payment_made_in_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        check = stack.control("POST", f"apps/{CLIENT_ID}/intent-to-receive")
        assert (check["passed"], check["webhook_status"]) == (True, "OK")
        invoice = _sent(stack, "70.00")
        stack.control("POST", "webhooks/deliver", force=True)  # our own writes' notices
        stack.work()
        assert stack.api("GET", f"/api/invoices/{invoice['id']}").json["status"] == "sent"
        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        assert link is not None
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:
            xero.create_payment({"Invoice": {"InvoiceID": link.qbo_id}, "Account": {"Code": "090"},
                                 "Date": "2026-12-03", "Amount": Decimal("70.00")}, request_id="bookkeeper-1")
        assert stack.control("POST", "webhooks/deliver", force=True)["delivered"] == 1
        stack.work()
        paid = stack.api("GET", f"/api/invoices/{invoice['id']}").json
        assert (paid["status"], Decimal(paid["amount_paid"])) == ("paid", Decimal("70.00"))
        with Session(get_state(stack.app).engine) as db:
            notices = db.exec(select(InboxNotice.entity, InboxNotice.status).where(
                InboxNotice.realm_id == stack.org)).all()
        assert ("XeroInvoice", "pending") not in notices and len(notices) >= 2
        assert all(status in ("applied", "skipped") for _entity, status in notices)


def test_a_wrongly_signed_xero_delivery_is_refused_and_records_nothing(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"ABC"}'
        answer = stack.client.post(WEBHOOK_PATH, data=body, headers={"x-xero-signature": "bm90LWl0"})
        assert (answer.status_code, answer.data) == (401, b"")
        good = base64.b64encode(hmac.new(WEBHOOK_KEY.encode(), body, hashlib.sha256).digest()).decode()
        answer = stack.client.post(WEBHOOK_PATH, data=body, headers={"x-xero-signature": good})
        assert (answer.status_code, answer.data) == (200, b"")
        with Session(get_state(stack.app).engine) as db:
            assert db.exec(select(InboxNotice)).all() == []


def _triggers(stack: XeroStack) -> list[tuple[str, str]]:
    return sorted((row["trigger"], row["contact_id"]) for row in stack.api("GET", "/api/automation-log").json)


def _crm_contacts(stack: XeroStack) -> dict[str, dict]:
    return {c["id"]: c for c in stack.api("GET", "/api/contacts").json}


def test_a_contact_made_in_xero_reaches_the_crm_by_the_poll_and_a_change_updates_it(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        stack.control("POST", "clock", advance_seconds=5)  # after the connect
        with stack.xero() as xero:
            made = xero.save_contact({"Name": "Grace Hopper", "FirstName": "Grace", "LastName": "Hopper",
                                      "EmailAddress": "grace@example.com"}, request_id="bookkeeper-1",
                                     create_only=True)
        assert _crm_contacts(stack) == {}
        polled = _poll(stack)
        assert (polled.status, polled.applied) == ("polled", 1)
        link = link_by_qbo_id(get_state(stack.app), stack.tenant, "contact", made["ContactID"])
        assert link is not None and link.origin == "qbo"
        contact = _crm_contacts(stack)[link.crm_id]
        assert (contact["first_name"], contact["last_name"], contact["email"]) == ("Grace", "Hopper", "grace@example.com")
        assert _triggers(stack) == [("customer_created_in_qbo", link.crm_id)]
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:
            xero.save_contact({"ContactID": made["ContactID"], "EmailAddress": "grace@navy.example"},
                              request_id="bookkeeper-2")
        before = stack.stats()
        assert _poll(stack).applied == 1
        assert _crm_contacts(stack)[link.crm_id]["email"] == "grace@navy.example"
        assert list(_crm_contacts(stack)) == [link.crm_id]  # updated, not doubled
        stack.work()  # what came from Xero is not pushed back
        after = stack.stats()
        assert {k: after.get(k, 0) for k in ("contacts.post", "contacts.put")} == \
            {k: before.get(k, 0) for k in ("contacts.post", "contacts.put")}
        assert _poll(stack).applied == 0
        assert _triggers(stack) == [("customer_created_in_qbo", link.crm_id)]  # once


def test_a_contact_made_in_xero_reaches_the_crm_by_its_webhook(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        assert stack.control("POST", f"apps/{CLIENT_ID}/intent-to-receive")["passed"] is True
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:
            made = xero.save_contact({"Name": "Ada Lovelace", "EmailAddress": "ada@example.com"},
                                     request_id="bookkeeper-1", create_only=True)
        assert stack.control("POST", "webhooks/deliver", force=True)["delivered"] == 1
        stack.work()
        link = link_by_qbo_id(get_state(stack.app), stack.tenant, "contact", made["ContactID"])
        assert link is not None
        assert _crm_contacts(stack)[link.crm_id]["email"] == "ada@example.com"
        with Session(get_state(stack.app).engine) as db:
            notices = db.exec(select(InboxNotice.entity, InboxNotice.status).where(
                InboxNotice.realm_id == stack.org)).all()
        assert notices == [("XeroContact", "applied")]  # by the read of the poll the notice queued


def test_the_plugins_own_contact_write_does_not_come_back_from_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = {"id": _sent(stack, "70.00")["contact_id"]}  # the contact goes to Xero with its invoice
        stack.control("POST", "clock", advance_seconds=5)
        before = stack.stats()
        stack.api("PATCH", f"/api/contacts/{contact['id']}", json={"last_name": "King"})
        stack.work()
        assert stack.stats().get("contacts.post", 0) == before.get("contacts.post", 0) + 1  # our write
        link = get_link(get_state(stack.app), stack.tenant, "contact", contact["id"])
        assert link is not None and link.qbo_id
        kept = _crm_contacts(stack)
        assert kept[contact["id"]]["last_name"] == "King"
        stack.control("POST", "webhooks/deliver", force=True)
        stack.work()
        polled = _poll(stack)
        assert (polled.status, polled.applied, polled.skipped) == ("polled", 0, 2)  # our contact and invoice: echoes
        assert _crm_contacts(stack) == kept  # not written again
        assert stack.stats().get("contacts.post", 0) == before.get("contacts.post", 0) + 1  # nothing pushed back
        assert _triggers(stack) == []


def _pay(stack: XeroStack, invoice_id: str, amount: str, request_id: str) -> None:
    stack.control("POST", "clock", advance_seconds=5)
    with stack.xero() as xero:
        xero.create_payment({"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"},
                             "Date": "2026-12-03", "Amount": Decimal(amount)}, request_id=request_id)


def test_the_review_request_fires_once_when_the_first_invoice_is_paid_in_two_payments_in_xero(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, review_request=True) as stack:
        invoice = _sent(stack, "70.00")
        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        assert link is not None and link.qbo_id
        contact = invoice["contact_id"]
        _pay(stack, link.qbo_id, "30.00", "bookkeeper-1")
        assert _poll(stack).applied == 1
        assert stack.api("GET", f"/api/invoices/{invoice['id']}").json["status"] == "partially_paid"
        assert _triggers(stack) == [("payment_received_in_qbo", contact)]
        _pay(stack, link.qbo_id, "40.00", "bookkeeper-2")
        assert _poll(stack).applied == 1
        assert stack.api("GET", f"/api/invoices/{invoice['id']}").json["status"] == "paid"
        assert _triggers(stack) == [("invoice_paid_in_full", contact), ("payment_received_in_qbo", contact),
                                    ("payment_received_in_qbo", contact), ("review_request", contact)]
        second = stack.api("POST", "/api/invoices", json={
            "contact_id": contact, "lines": [{"name": "Mowing", "quantity": "1", "unit_price": "15.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{second['id']}/send").status_code == 200
        stack.work()
        second_link = get_link(get_state(stack.app), stack.tenant, "invoice", second["id"])
        assert second_link is not None and second_link.qbo_id
        _pay(stack, second_link.qbo_id, "15.00", "bookkeeper-3")  # a third payment event
        stack.control("POST", "webhooks/deliver", force=True)
        stack.work()
        assert _poll(stack).status == "polled"
        assert stack.api("GET", f"/api/invoices/{second['id']}").json["status"] == "paid"
        requests = [row for row in stack.api("GET", "/api/automation-log").json if row["trigger"] == "review_request"]
        assert len(requests) == 1 and requests[0]["payload"]["qbo_invoice_id"] == link.qbo_id
        assert [t for t, _c in _triggers(stack)].count("invoice_paid_in_full") == 2


def test_an_invoice_made_in_xero_is_imported_by_the_poll_and_fires_overdue_once(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, import_invoices=True) as stack:
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:
            made = xero.save_contact({"Name": "Grace Hopper", "EmailAddress": "grace@example.com"},
                                     request_id="bookkeeper-1", create_only=True)
            bill = xero.save_invoice({"Type": "ACCREC", "Contact": {"ContactID": made["ContactID"]},
                                      "Date": "2026-10-01", "DueDate": "2026-10-31", "Status": "AUTHORISED",
                                      "LineAmountTypes": "NoTax", "LineItems": [{
                                          "Description": "Consulting", "Quantity": Decimal(2),
                                          "UnitAmount": Decimal("12.50"), "AccountCode": "200"}]},
                                     request_id="bookkeeper-2", create_only=True)
        assert _poll(stack).applied == 2
        state = get_state(stack.app)
        contact = link_by_qbo_id(state, stack.tenant, "contact", made["ContactID"])
        link = link_by_qbo_id(state, stack.tenant, "invoice", bill["InvoiceID"])
        assert contact is not None and link is not None and link.origin == "qbo"
        imported = stack.api("GET", f"/api/invoices/{link.crm_id}").json
        assert (imported["contact_id"], Decimal(imported["total"]), imported["status"], imported["due_date"]) == \
            (contact.crm_id, Decimal("25.00"), "sent", "2026-10-31")
        with stack.app.app_context():
            conn = connection_for(state.engine, stack.tenant)
            assert conn is not None
            assert fire_overdue(state, conn, date(2026, 11, 1)) == 1
            assert fire_overdue(state, conn, date(2026, 11, 2)) == 0  # once
        overdue = [row for row in stack.api("GET", "/api/automation-log").json if row["trigger"] == "invoice_overdue"]
        assert [(row["contact_id"], row["payload"]["qbo_invoice_id"], row["payload"]["due_date"]) for row in overdue] == \
            [(contact.crm_id, bill["InvoiceID"], "2026-10-31")]


def test_a_crm_payment_without_an_invoice_does_not_come_back_as_an_imported_invoice(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, import_invoices=True, review_request=True) as stack:
        ada = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                       "email": "ada@example.com"}).json
        stack.control("POST", "clock", advance_seconds=5)
        paid = stack.api("POST", "/api/payments", json={
            "source": "order_form", "contact_id": ada["id"], "amount": "45.50",
            "lines": [{"name": "Seeds", "quantity": "2", "unit_price": "22.75"}]})
        assert paid.status_code == 201, paid.json
        stack.work()
        sale = get_link(get_state(stack.app), stack.tenant, "sales_receipt", paid.json["id"])
        assert sale is not None and sale.qbo_id and sale.status == "synced"
        polled = _poll(stack)
        assert (polled.status, polled.applied) == ("polled", 0)
        assert stack.api("GET", "/api/invoices").json == []
        assert _triggers(stack) == []


class WorkerKilled(BaseException):
    """Stands for the worker process dying: nothing in the plugin catches it."""


def test_an_invoice_whose_push_died_after_xero_answered_is_not_imported_as_a_second_one(
        plugin_config, xero_url, monkeypatch):
    with xero_crm_stack(plugin_config, xero_url, import_invoices=True) as stack:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                           "email": "ada@example.com"}).json
        stack.work()
        stack.control("POST", "clock", advance_seconds=5)  # the poll reads what Xero makes from now on
        invoice = stack.api("POST", "/api/invoices", json={
            "contact_id": contact["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "70.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        state = get_state(stack.app)
        with Session(state.engine) as db:
            outbox_id = db.exec(select(OutboxEvent.id).where(OutboxEvent.tenant_id == stack.tenant,
                                                             OutboxEvent.event_type == "invoice.sent")).one()
        real = xero_invoices.record_writes

        def killed(*args, **kwargs):
            raise WorkerKilled()

        monkeypatch.setattr(xero_invoices, "record_writes", killed)
        with stack.app.app_context(), pytest.raises(WorkerKilled):
            process(state, outbox_id)  # Xero made the invoice; its link was never saved
        monkeypatch.setattr(xero_invoices, "record_writes", real)
        polled = _poll(stack)
        assert (polled.status, polled.applied) == ("polled", 0)  # the push's invoice, not one to import
        assert [i["id"] for i in stack.api("GET", "/api/invoices").json] == [invoice["id"]]
        for key in state.redis.scan_iter("crm-qbo:push:*"):  # the dead worker's locks expire with its lease
            state.redis.delete(key)
        with stack.app.app_context():
            assert process(state, outbox_id, now=utcnow() + timedelta(hours=1)) == "done"
        link = get_link(state, stack.tenant, "invoice", invoice["id"])
        assert link is not None and link.qbo_id and link.origin == "crm"
        assert _poll(stack).applied == 0
        assert [i["id"] for i in stack.api("GET", "/api/invoices").json] == [invoice["id"]]


def test_a_change_made_in_xero_keeps_what_xero_cannot_hold_of_a_crm_contact(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        people = [stack.api("POST", "/api/contacts", json=body).json for body in (
            {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines",
             "email": "ada@example.com"},
            {"company": "Acme Ltd", "email": "office@acme.example"})]
        for person in people:
            invoice = stack.api("POST", "/api/invoices", json={
                "contact_id": person["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "9.00"}]}).json
            assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        stack.work()
        stack.control("POST", "clock", advance_seconds=5)
        links = [get_link(get_state(stack.app), stack.tenant, "contact", p["id"]) for p in people]
        with stack.xero() as xero:
            for n, link in enumerate(links):
                assert link is not None and link.qbo_id
                xero.save_contact({"ContactID": link.qbo_id, "EmailAddress": f"new{n}@example.com"},
                                  request_id=f"bookkeeper-{n}")
        assert _poll(stack).applied == 2
        after = _crm_contacts(stack)
        assert [(after[p["id"]]["first_name"], after[p["id"]]["last_name"], after[p["id"]]["company"],
                 after[p["id"]]["email"]) for p in people] == [
            ("Ada", "Lovelace", "Analytical Engines", "new0@example.com"),
            ("", "", "Acme Ltd", "new1@example.com")]


def test_a_contact_changed_in_xero_while_the_poll_reads_its_pages_makes_it_skip_none(plugin_config, xero_url, monkeypatch):
    """Xero lists changes oldest first: one changed between two page reads moves to the end, and
    reading on by page number would skip the contact that takes its place."""
    with xero_crm_stack(plugin_config, xero_url) as stack:
        made: list[dict] = []
        with stack.xero() as xero:
            for batch, size in enumerate((50, 50, 20)):  # three moments, seconds apart
                stack.control("POST", "clock", advance_seconds=5)
                saved = xero.save_contacts([{"Name": f"Person {batch}-{i}"} for i in range(size)],
                                           request_id=f"bookkeeper-{batch}", create_only=True)
                made += [s.element for s in saved]
        real, reads = XeroClient.request, []

        def request(self, method, path, **kwargs):
            answer = real(self, method, path, **kwargs)
            if method == "GET" and path == "/Contacts":
                reads.append(kwargs.get("params"))
                if len(reads) == 1:  # the bookkeeper edits the oldest contact right after page 1
                    stack.control("POST", "clock", advance_seconds=5)
                    real(self, "POST", "/Contacts", body={"Contacts": [{"ContactID": made[0]["ContactID"],
                                                                        "EmailAddress": "first@example.com"}]},
                         request_id="bookkeeper-edit")
            return answer

        monkeypatch.setattr(XeroClient, "request", request)
        assert _poll(stack).status == "polled"
        state = get_state(stack.app)
        missing = [c["Name"] for c in made if link_by_qbo_id(state, stack.tenant, "contact", c["ContactID"]) is None]
        assert missing == []
        first = link_by_qbo_id(state, stack.tenant, "contact", made[0]["ContactID"])
        assert first is not None and _crm_contacts(stack)[first.crm_id]["email"] == "first@example.com"
        assert len(_crm_contacts(stack)) == 120


def test_a_paid_order_form_before_the_first_invoice_does_not_keep_its_review_request_from_firing(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, review_request=True) as stack:
        ada = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                       "email": "ada@example.com"}).json
        assert stack.api("POST", "/api/payments", json={
            "source": "order_form", "contact_id": ada["id"], "amount": "12.00",
            "lines": [{"name": "Seeds", "quantity": "1", "unit_price": "12.00"}]}).status_code == 201
        stack.work()  # the order form becomes a paid sale in Xero, dated today
        invoice = stack.api("POST", "/api/invoices", json={
            "contact_id": ada["id"], "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "70.00"}]}).json
        assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        stack.work()
        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        assert link is not None and link.qbo_id
        _pay(stack, link.qbo_id, "70.00", "bookkeeper-1")
        assert _poll(stack).applied == 1
        requests = [row for row in stack.api("GET", "/api/automation-log").json if row["trigger"] == "review_request"]
        assert [(row["contact_id"], row["payload"]["qbo_invoice_id"]) for row in requests] == [(ada["id"], link.qbo_id)]


def test_the_review_request_fires_once_when_the_first_invoice_is_paid_in_the_crm(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, review_request=True) as stack:
        invoice = _sent(stack, "70.00")
        stack.control("POST", "clock", advance_seconds=5)
        paid = stack.api("POST", "/api/payments", json={"source": "invoice", "invoice_id": invoice["id"],
                                                        "amount": "70.00"})
        assert paid.status_code == 201, paid.json
        stack.work()  # the payment goes to Xero, which marks its invoice paid
        _poll(stack)
        _poll(stack)
        assert _triggers(stack) == [("invoice_paid_in_full", invoice["contact_id"]),
                                    ("review_request", invoice["contact_id"])]  # not payment_received: ours


def test_a_notice_the_polls_read_covers_is_settled_without_reading_its_invoice_again(plugin_config, xero_url):
    """A burst of notices costs one modified-since read, not one GET per notice: the poll a notice
    queues reads what changed, and settles each notice that arrived before with what that read did."""
    with xero_crm_stack(plugin_config, xero_url) as stack:
        assert stack.control("POST", f"apps/{CLIENT_ID}/intent-to-receive")["passed"] is True
        invoice = _sent(stack, "70.00")
        stack.control("POST", "webhooks/deliver", force=True)  # our own writes' notices
        stack.work()
        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        assert link is not None
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:
            xero.create_payment({"Invoice": {"InvoiceID": link.qbo_id}, "Account": {"Code": "090"},
                                 "Date": "2026-12-03", "Amount": Decimal("70.00")}, request_id="bookkeeper-1")
        before = stack.stats()
        assert stack.control("POST", "webhooks/deliver", force=True)["delivered"] == 1
        stack.work()
        after = stack.stats()
        paid = stack.api("GET", f"/api/invoices/{invoice['id']}").json
        assert (paid["status"], Decimal(paid["amount_paid"])) == ("paid", Decimal("70.00"))
        assert after.get("invoices.read", 0) == before.get("invoices.read", 0)  # no GET by id
        assert after.get("invoices.get", 0) == before.get("invoices.get", 0) + 1  # the one modified-since read
        with Session(get_state(stack.app).engine) as db:
            last = db.exec(select(InboxNotice.entity, InboxNotice.status).where(
                InboxNotice.realm_id == stack.org).order_by(InboxNotice.id.desc())).first()  # type: ignore[union-attr]
        assert last == ("XeroInvoice", "applied")


def test_a_notice_that_arrives_while_a_poll_runs_is_applied_by_that_poll_before_it_returns(
        plugin_config, xero_url, monkeypatch):
    """A notice whose own poll found the organisation busy is not left for the scheduler's next
    round: the poll holding it looks again after its read and polls once more."""
    from crm_qbo_plugin.inbound import xero_poll
    from crm_qbo_plugin.qbo.notices import Notice
    from crm_qbo_plugin.store import inbox

    with xero_crm_stack(plugin_config, xero_url) as stack:
        stack.control("POST", "clock", advance_seconds=5)
        made: list[dict] = []
        settle = xero_poll._apply_notices

        def arrives_meanwhile(state, target, org, xero, lock, result, arrived):
            settle(state, target, org, xero, lock, result, arrived)
            if not made:  # a contact made in Xero, its notice stored while this poll holds the lock
                stack.control("POST", "clock", advance_seconds=5)
                made.append(xero.save_contact({"Name": "Grace Hopper", "EmailAddress": "grace@example.com"},
                                              request_id="bookkeeper-1", create_only=True))
                inbox.store_webhook(state.engine, [Notice(realm_id=org, entity="XeroContact",
                                                          entity_id=made[0]["ContactID"], operation="CREATE",
                                                          change_stamp=utcnow().isoformat())], utcnow())

        monkeypatch.setattr(xero_poll, "_apply_notices", arrives_meanwhile)
        assert _poll(stack).status == "polled"
        link = link_by_qbo_id(get_state(stack.app), stack.tenant, "contact", made[0]["ContactID"])
        assert link is not None and _crm_contacts(stack)[link.crm_id]["email"] == "grace@example.com"
        with Session(get_state(stack.app).engine) as db:
            statuses = db.exec(select(InboxNotice.status).where(InboxNotice.realm_id == stack.org)).all()
        assert statuses == ["applied"]


def test_a_notice_arriving_during_the_poll_is_settled_by_its_read_only_if_that_read_saw_its_change(
        plugin_config, xero_url, monkeypatch):
    """Xero dates each event (when the change happened): a notice that arrives while a poll runs,
    about a change no newer than the version the poll read, needs no read of its own; one about a
    later change is read again."""
    from crm_qbo_plugin.inbound import xero_poll
    from crm_qbo_plugin.qbo.notices import Notice
    from crm_qbo_plugin.store import inbox
    from crm_qbo_plugin.xero import parse_timestamp

    with xero_crm_stack(plugin_config, xero_url) as stack:
        invoice = _sent(stack, "70.00")
        link = get_link(get_state(stack.app), stack.tenant, "invoice", invoice["id"])
        assert link is not None
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:
            xero.create_payment({"Invoice": {"InvoiceID": link.qbo_id}, "Account": {"Code": "090"},
                                 "Date": "2026-12-03", "Amount": Decimal("30.00")}, request_id="bookkeeper-1")
            changed = parse_timestamp(xero.get_invoice(link.qbo_id)["UpdatedDateUTC"])
        settle = xero_poll._apply_notices

        def notices_arrive(state, target, org, xero, lock, result, arrived):
            for when in (changed, changed + timedelta(seconds=1)):  # the payment's event, then a later one
                inbox.store_webhook(state.engine, [Notice(realm_id=org, entity="XeroInvoice", entity_id=link.qbo_id,
                                                          operation="UPDATE", change_stamp=when.isoformat())],
                                    utcnow())
            settle(state, target, org, xero, lock, result, arrived)

        monkeypatch.setattr(xero_poll, "_apply_notices", notices_arrive)
        before = stack.stats()
        assert _poll(stack).status == "polled"
        after = stack.stats()
        assert after.get("invoices.read", 0) == before.get("invoices.read", 0) + 1  # the later one only
        paid = stack.api("GET", f"/api/invoices/{invoice['id']}").json
        assert Decimal(paid["amount_paid"]) == Decimal("30.00")
        with Session(get_state(stack.app).engine) as db:
            settled = db.exec(select(InboxNotice.change_stamp, InboxNotice.status).where(
                InboxNotice.realm_id == stack.org).order_by(InboxNotice.id)).all()  # type: ignore[arg-type]
        assert [status for _stamp, status in settled] == ["applied", "skipped"]


def test_sixty_payments_made_in_xero_are_read_in_two_calls_and_each_fires_once(plugin_config, xero_url):
    """A bank feed reconciled in Xero pays many invoices at once: the poll reads the payments the
    automation needs 50 to a call (not one call each of Xero's 60 a minute), and each fires once."""
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contact = stack.api("POST", "/api/contacts", json={"first_name": "Ada", "last_name": "Lovelace",
                                                           "email": "ada@example.com"}).json
        invoices = []
        for n in range(60):
            invoice = stack.api("POST", "/api/invoices", json={"contact_id": contact["id"], "lines": [
                {"name": "Gardening", "quantity": "1", "unit_price": f"{20 + n}.00"}]}).json
            assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
            invoices.append(invoice)
        stack.work()
        state = get_state(stack.app)
        payments = []
        for n, invoice in enumerate(invoices):
            link = get_link(state, stack.tenant, "invoice", invoice["id"])
            assert link is not None and link.qbo_id
            payments.append({"Invoice": {"InvoiceID": link.qbo_id}, "Account": {"Code": "090"},
                             "Date": "2026-12-03", "Amount": Decimal(f"{20 + n}.00")})
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:  # the bookkeeper, in two arrays
            for start in (0, 30):
                assert all(s.ok for s in xero.create_payments(payments[start:start + 30], request_id=f"feed-{start}"))
        before = stack.stats()
        polled = _poll(stack)
        assert (polled.status, polled.applied) == ("polled", 60)
        after = stack.stats()
        read = {k: after.get(k, 0) - before.get(k, 0) for k in ("payments.get", "payments.read")}
        assert read == {"payments.get": 2, "payments.read": 0}  # two lists of ids, none read one by one
        assert all(stack.api("GET", f"/api/invoices/{i['id']}").json["status"] == "paid" for i in invoices)
        fired = [t for t, _c in _triggers(stack) if t == "payment_received_in_qbo"]
        assert len(fired) == 60
        assert _poll(stack).status == "polled"
        assert len([t for t, _c in _triggers(stack) if t == "payment_received_in_qbo"]) == 60  # not again


def test_a_poll_whose_lock_another_poll_took_stops_and_that_poll_applies_the_rest(plugin_config, xero_url, monkeypatch):
    """A poll made to wait by Xero's limits longer than its lock lives must not go on beside the
    poll that took the lock (two polls of one organisation would hold two workers and apply out of
    order): it stops before applying more, and what it left is applied once, by the next poll."""
    from crm_qbo_plugin.inbound import xero_poll
    from crm_qbo_plugin.runtime.realm_lock import realm_lock

    with xero_crm_stack(plugin_config, xero_url) as stack:
        stack.control("POST", "clock", advance_seconds=5)
        with stack.xero() as xero:
            made = [s.element for s in xero.save_contacts(
                [{"Name": f"Person {i}", "EmailAddress": f"p{i}@example.com"} for i in range(5)],
                request_id="bookkeeper-1", create_only=True)]
        monkeypatch.setattr(xero_poll, "POLL_PAGE_SIZE", 2)
        state = get_state(stack.app)
        other = realm_lock(state.redis, stack.org)
        keep, calls = xero_poll._keep, []

        def lock_runs_out_after_the_first_page(lock):
            calls.append(lock)
            if len(calls) == 3:  # the second page was read: our lock ran out and another poll took it
                state.redis.delete(other.key)
                assert other.try_acquire_or_renew()
            keep(lock)

        monkeypatch.setattr(xero_poll, "_keep", lock_runs_out_after_the_first_page)
        assert _poll(stack).applied == 2  # the first page only
        assert other.holder() == other.token  # the other poll's lock is left alone
        linked = [c for c in made if link_by_qbo_id(state, stack.tenant, "contact", c["ContactID"]) is not None]
        assert len(linked) == 2 and len(_crm_contacts(stack)) == 2

        other.release()
        assert _poll(stack).applied == 3
        assert all(link_by_qbo_id(state, stack.tenant, "contact", c["ContactID"]) is not None for c in made)
        assert sorted(c["email"] for c in _crm_contacts(stack).values()) == [f"p{i}@example.com" for i in range(5)]
