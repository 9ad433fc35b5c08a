"""Import on connect from Xero: every contact (and every sales invoice with the toggle on) reaches
the reference CRM once, with the import's progress on its run, matched by e-mail to the CRM's
contacts, never pushed back, and resumable after a worker dies between its host writes and its
checkpoint."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from crm_qbo_plugin.inbound import xero_import
from crm_qbo_plugin.inbound.importer import import_lock
from crm_qbo_plugin.inbound.xero_import import run_xero_import
from crm_qbo_plugin.jobs.scheduler import plugin_jobs
from crm_qbo_plugin.onboarding.lifecycle import after_connect
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store import cursors
from crm_qbo_plugin.store.tables import Link, SyncRun
from crm_qbo_plugin.xero import XeroClient
from tests.support.xero_stack import XeroStack, connect_xero, xero_crm_stack, xero_sandbox
from tests.xero_sandbox.support import approve

XERO_WRITES = ("contacts.post", "contacts.put", "invoices.post", "invoices.put", "payments.put")


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _seed_contacts(xero: XeroClient, count: int) -> list[dict]:
    people = [{"Name": f"Person {i}", "FirstName": "Person", "LastName": str(i),
               **({"EmailAddress": f"p{i}@example.com"} if i % 3 else {})} for i in range(count)]
    saved = xero.save_contacts(people, request_id="seed-contacts", create_only=True)
    assert all(s.ok for s in saved)
    return [s.element for s in saved]


def _seed_invoices(xero: XeroClient, people: list[dict], amounts: list[str]) -> list[dict]:
    bills = [{"Type": "ACCREC", "Contact": {"ContactID": people[i % len(people)]["ContactID"]},
              "Date": "2026-11-02", "DueDate": "2026-12-02", "Status": "AUTHORISED", "LineAmountTypes": "NoTax",
              "LineItems": [{"Description": "Gardening", "Quantity": Decimal(1), "UnitAmount": Decimal(amount),
                             "AccountCode": "200"}]} for i, amount in enumerate(amounts)]
    bills.append({**bills[0], "Type": "ACCPAY"})  # a bill: not a CRM invoice
    saved = xero.save_invoices(bills, request_id="seed-invoices", create_only=True)
    assert all(s.ok for s in saved), [s.errors for s in saved]
    return [s.element for s in saved[:-1]]


def _run(stack: XeroStack) -> SyncRun:
    with Session(get_state(stack.app).engine) as db:
        (run,) = db.exec(select(SyncRun).where(SyncRun.tenant_id == stack.tenant, SyncRun.kind == "import")).all()
        return run


def _links(stack: XeroStack, kind: str) -> dict[str, str]:
    with Session(get_state(stack.app).engine) as db:
        rows = db.exec(select(Link).where(Link.tenant_id == stack.tenant, Link.kind == kind)).all()
        return {str(row.qbo_id): row.crm_id for row in rows}


def test_connecting_to_xero_imports_every_contact_and_sales_invoice_once_with_progress(
        plugin_config, xero_url, monkeypatch):
    monkeypatch.setattr(xero_import, "PAGE_SIZE", 3)  # several pages from a few records
    with xero_crm_stack(plugin_config, xero_url, connected=False) as stack:
        known = stack.api("POST", "/api/contacts", json={"first_name": "Known", "last_name": "Person",
                                                         "email": "P4@example.com"}).json
        connect_xero(stack.app, stack.tenant, xero_url, stack.org, import_invoices=True)
        with stack.xero() as xero:
            people = _seed_contacts(xero, 7)
            bills = _seed_invoices(xero, people, ["10.50", "20.00", "30.25", "40.00"])
        state = get_state(stack.app)
        with stack.app.app_context():
            after_connect(state, stack.tenant, datetime.now(UTC), same_company=False)
        imports = [job.args for job in state.queue.get_jobs() if job.func_name.endswith(".run_import")]
        assert imports == [[stack.tenant]]
        before = stack.stats()
        stack.work()
        run = _run(stack)
        assert (run.status, run.errors) == ("succeeded", [])
        assert run.counts == {"customers_total": 7, "customers_done": 7, "invoices_total": 4, "invoices_done": 4}
        contacts = _links(stack, "contact")
        assert len(contacts) == 7 and len(set(contacts.values())) == 7
        assert contacts[people[4]["ContactID"]] == known["id"]  # matched by e-mail, not doubled
        crm_contacts = stack.api("GET", "/api/contacts").json
        assert len(crm_contacts) == 7
        assert sorted(str(c["email"]) for c in crm_contacts) == sorted(
            ["P4@example.com", *(str(p.get("EmailAddress")) for p in people if p is not people[4])])
        invoices = _links(stack, "invoice")
        assert set(invoices) == {b["InvoiceID"] for b in bills}
        crm_invoices = {i["id"]: i for i in stack.api("GET", "/api/invoices").json}
        assert {(crm_invoices[invoices[b["InvoiceID"]]]["contact_id"], Decimal(crm_invoices[invoices[b["InvoiceID"]]]["total"]))
                for b in bills} == {(contacts[b["Contact"]["ContactID"]], b["Total"]) for b in bills}
        assert len(crm_invoices) == 4
        stack.work()  # nothing imported is pushed back, and history fires no trigger
        after = stack.stats()
        # the one write: the known contact (made in the CRM within the connect's cutoff) pushed to its match
        expected = {k: before.get(k, 0) + (k == "contacts.post") for k in XERO_WRITES}
        assert {k: after.get(k, 0) for k in XERO_WRITES} == expected
        with stack.xero() as xero:
            assert xero.get_contact(people[4]["ContactID"])["Name"] == "Known Person"
        assert stack.api("GET", "/api/automation-log").json == []
        assert cursors.load(state.engine, stack.tenant, "import:XeroContact") == "3"  # pages of 3, 3 and 1


class _Killed(BaseException):
    """The worker dies: nothing in the plugin catches this."""


def test_a_xero_import_killed_between_host_writes_and_checkpoint_resumes_without_duplicates(
        plugin_config, xero_url, monkeypatch):
    monkeypatch.setattr(xero_import, "PAGE_SIZE", 3)
    with xero_crm_stack(plugin_config, xero_url) as stack:
        with stack.xero() as xero:
            people = _seed_contacts(xero, 8)
        state = get_state(stack.app)
        real_save_counts, calls = xero_import.save_counts, []

        def dying_save_counts(conn, run, counts):  # the counts at start, then one per page
            calls.append(dict(counts))
            if len(calls) == 3:
                raise _Killed  # page 2 is in the CRM; its links and checkpoint never commit
            real_save_counts(conn, run, counts)

        monkeypatch.setattr(xero_import, "save_counts", dying_save_counts)
        with stack.app.app_context(), pytest.raises(_Killed):
            run_xero_import(state, stack.tenant)
        assert len(stack.api("GET", "/api/contacts").json) == 6  # two pages written to the CRM
        assert len(_links(stack, "contact")) == 3  # one page committed
        assert cursors.load(state.engine, stack.tenant, "import:XeroContact") == "1"
        assert _run(stack).counts == {"customers_total": 8, "customers_done": 3}
        monkeypatch.setattr(xero_import, "save_counts", real_save_counts)
        state.redis.delete(import_lock(state, stack.tenant).key)  # as its TTL would
        jobs = {job.name: job for job in plugin_jobs(state, stack.app.app_context)}
        assert jobs["xero-poll"].run() == 1  # the scheduler's round also queues the stopped import
        assert sorted(job.func_name.rsplit(".", 1)[-1] for job in state.queue.get_jobs()) == \
            ["poll_xero_connection", "run_import"]
        stack.work()
        run = _run(stack)
        assert (run.status, run.counts) == ("succeeded", {"customers_total": 8, "customers_done": 8})
        crm_contacts = stack.api("GET", "/api/contacts").json
        assert len(crm_contacts) == 8
        links = _links(stack, "contact")
        assert set(links) == {p["ContactID"] for p in people} and set(links.values()) == {c["id"] for c in crm_contacts}


CARD = "/integrations/quickbooks/"


def _connect_from_card(stack: XeroStack, **form: str) -> None:
    web = stack.sign_in()
    token = re.search(r'id="connect-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                      web.get(CARD).text)
    assert token is not None
    consent = web.post(CARD + "connect", data={"csrf_token": token.group(1), "provider": "xero", **form})
    assert consent.status_code == 303
    back = approve(str(consent.headers["Location"]), stack.org)
    done = web.get(CARD + "xero/callback?" + urllib.parse.urlencode(back))
    assert done.status_code == 303, done.text


def test_the_cards_import_invoices_choice_holds_for_a_xero_connect(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, connected=False) as stack:
        _connect_from_card(stack, import_invoices="on")
        with stack.xero() as xero:  # before the import job runs
            people = _seed_contacts(xero, 2)
            bills = _seed_invoices(xero, people, ["10.00", "20.00"])
        stack.work()
        assert (_run(stack).status, _run(stack).counts) == ("succeeded", {
            "customers_total": 2, "customers_done": 2, "invoices_total": 2, "invoices_done": 2})
        assert set(_links(stack, "invoice")) == {b["InvoiceID"] for b in bills}


def test_connecting_a_location_to_xero_from_the_card_starts_the_import(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url, connected=False) as stack:
        web = stack.sign_in()
        token = re.search(r'id="connect-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                          web.get(CARD).text)
        assert token is not None
        consent = web.post(CARD + "connect", data={"csrf_token": token.group(1), "provider": "xero"})
        assert consent.status_code == 303
        back = approve(str(consent.headers["Location"]), stack.org)
        done = web.get(CARD + "xero/callback?" + urllib.parse.urlencode(back))
        assert done.status_code == 303, done.text
        state = get_state(stack.app)
        assert [job.args for job in state.queue.get_jobs() if job.func_name.endswith(".run_import")] == [[stack.tenant]]
        assert (_run(stack).status, _run(stack).counts) == ("running", {})
        with stack.xero() as xero:
            people = _seed_contacts(xero, 2)
        stack.work()
        assert (_run(stack).status, _run(stack).counts) == ("succeeded", {"customers_total": 2, "customers_done": 2})
        assert set(_links(stack, "contact")) == {p["ContactID"] for p in people}
        assert len(stack.api("GET", "/api/contacts").json) == 2


def test_reconnecting_the_same_organisation_polls_for_changes_instead_of_importing_again(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        state = get_state(stack.app)
        with stack.app.app_context():
            after_connect(state, stack.tenant, datetime.now(UTC), same_company=False)
            stack.work()
            assert _run(stack).status == "succeeded"
            after_connect(state, stack.tenant, datetime.now(UTC), same_company=True)
        assert [job.func_name.rsplit(".", 1)[-1] for job in state.queue.get_jobs()] == ["poll_xero_connection"]
        stack.work()
        assert _run(stack).status == "succeeded"  # still the one import run
