"""A backlog of sent invoices goes to Xero in arrays of up to 50 (one `PUT Invoices` each, with
summarizeErrors=false): each invoice lands once, with its own link, ledger entry and outbox
outcome as a single push would leave, and one Xero refuses fails alone, visibly, while the rest land."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.links import get_link
from crm_qbo_plugin.store.tables import OutboxEvent
from tests.support.xero_stack import connect_xero, xero_crm_stack, xero_sandbox

BACKLOG = 120
REFUSED = 57  # its tax maps to a Xero tax rate removed since (the card checked it when it was mapped)


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def test_a_backlog_of_120_invoices_goes_in_three_requests_each_invoice_once(plugin_config, xero_url):
    location = {"tax_rates": [{"name": "GST", "rate_percent": "15"}, {"name": "Old levy", "rate_percent": "2"}]}
    with xero_crm_stack(plugin_config, xero_url, location=location, connected=False) as stack:
        gst, old = (t["id"] for t in stack.location["tax_rates"])
        connect_xero(stack.app, stack.tenant, xero_url, stack.org,
                     tax_mapping={gst: "OUTPUT2", old: "GONE", "none": "NONE"})
        contacts = [stack.api("POST", "/api/contacts", json={
            "first_name": name, "last_name": "Lovelace", "email": f"{name.lower()}@example.com"}).json
            for name in ("Ada", "Grace", "Edsger")]
        with stack.xero() as xero:  # Edsger is in Xero already, under another name: matched by e-mail
            edsger = xero.save_contact({"Name": "E. W. Dijkstra", "EmailAddress": "edsger@example.com"},
                                       request_id="made-in-xero", create_only=True)
        invoices = []
        for n in range(BACKLOG):
            taxes = [old] if n == REFUSED else [gst]
            invoice = stack.api("POST", "/api/invoices", json={"contact_id": contacts[n % 3]["id"], "lines": [
                {"name": "Gardening", "quantity": "1", "unit_price": f"{10 + n}.25", "tax_ids": taxes}]}).json
            assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
            invoices.append(invoice)
        before = stack.stats()
        stack.work()

        calls = {k: v - before.get(k, 0) for k, v in stack.stats().items() if v != before.get(k, 0)}
        # One lookup and one array for the new contacts (Ada, Grace), three arrays of invoices.
        assert (calls.get("contacts.get"), calls.get("contacts.put"), calls.get("invoices.put")) == (1, 1, 3)
        with stack.xero() as xero:
            numbers = Counter(inv["InvoiceNumber"] for page in xero.changed("Invoices", datetime(2000, 1, 1, tzinfo=UTC))
                              for inv in page)
        landed = [i["number"] for n, i in enumerate(invoices) if n != REFUSED]
        assert numbers == Counter(landed)  # each once, the refused one not at all

        state = get_state(stack.app)
        with Session(state.engine) as db:
            outcomes = {row.subject_id: row.status for row in db.exec(
                select(OutboxEvent).where(OutboxEvent.event_type == "invoice.sent")).all()}
        refused = invoices[REFUSED]["id"]
        assert outcomes == {i["id"]: ("failed" if i["id"] == refused else "done") for i in invoices}
        for n, invoice in enumerate(invoices):
            link = get_link(state, stack.tenant, "invoice", invoice["id"])
            assert link is not None
            if n == REFUSED:
                assert (link.status, link.qbo_id) == ("failed", None)
                assert link.last_error is not None and link.last_error.startswith("Xero refused the invoice: ")
                assert "GONE" in link.last_error
            else:
                assert (link.status, link.last_error) == ("synced", None) and link.qbo_id
        linked = [get_link(state, stack.tenant, "contact", contact["id"]) for contact in contacts]
        assert all(link is not None and link.status == "synced" and link.qbo_id for link in linked)
        assert linked[2] is not None and linked[2].qbo_id == edsger["ContactID"]
        assert len({link.qbo_id for link in linked if link is not None}) == 3


def test_the_contacts_of_a_whole_backlog_take_one_lookup_and_one_array(plugin_config, xero_url):
    """250 invoices, five to each of 50 new contacts: the first batch's leader matches or creates
    the contacts of the invoices waiting next too, so Xero's calls go to invoices (one lookup,
    one contact array, then invoice arrays — not one lookup and one array per batch of 50). A
    contact whose only invoice cannot go to Xero (a foreign currency) is not made ahead of it."""
    with xero_crm_stack(plugin_config, xero_url) as stack:
        contacts = [stack.api("POST", "/api/contacts", json={
            "first_name": f"Person{n:02d}", "last_name": "Backlog", "email": f"p{n:02d}@example.com"}).json
            for n in range(51)]
        with stack.xero() as xero:  # one of them is in Xero already, under another name
            known = xero.save_contact({"Name": "P. Seventeen", "EmailAddress": "p17@example.com"},
                                      request_id="made-in-xero", create_only=True)
        for n in range(250):
            if n == 50:  # next after the first batch, where its leader looks ahead
                foreign = stack.api("POST", "/api/invoices", json={
                    "contact_id": contacts[50]["id"], "currency": "EUR",
                    "lines": [{"name": "Gardening", "quantity": "1", "unit_price": "10.00"}]}).json
                assert stack.api("POST", f"/api/invoices/{foreign['id']}/send").status_code == 200
            invoice = stack.api("POST", "/api/invoices", json={"contact_id": contacts[n // 5]["id"], "lines": [
                {"name": "Gardening", "quantity": "1", "unit_price": f"{10 + n}.00"}]}).json
            assert stack.api("POST", f"/api/invoices/{invoice['id']}/send").status_code == 200
        before = stack.stats()
        stack.work()

        calls = {k: v - before.get(k, 0) for k, v in stack.stats().items() if v != before.get(k, 0)}
        assert (calls.get("contacts.get"), calls.get("contacts.put"), calls.get("invoices.put")) == (1, 1, 5)
        state = get_state(stack.app)
        links = [get_link(state, stack.tenant, "contact", contact["id"]) for contact in contacts]
        assert all(link is not None and link.status == "synced" and link.qbo_id for link in links[:50])
        assert len({link.qbo_id for link in links[:50] if link is not None}) == 50
        assert links[17] is not None and links[17].qbo_id == known["ContactID"]  # matched by e-mail, not made
        assert links[50] is None  # its invoice is held for its currency; its contact was not made
        with stack.xero() as xero:
            names = {c["Name"] for page in xero.changed("Contacts", datetime(2000, 1, 1, tzinfo=UTC)) for c in page}
        assert "Person50 Backlog" not in names and len(names) == 50
