"""Bulk host writes during the import: one host call per page and kind when the host offers the
optional bulk methods, one call per record when it does not — with the same CRM records and links
either way; a host's own ids win over the proposed ones; a page interrupted after its host writes
is re-run without doubling anything; `publish_many` records each event key once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from crm_qbo_plugin import (
    Contact,
    EventError,
    EventType,
    HostEvent,
    Invoice,
    InvoiceStatus,
    LineItem,
    Origin,
)
from crm_qbo_plugin.host import HostContractError, upsert_contacts
from crm_qbo_plugin.inbound import importer
from crm_qbo_plugin.inbound.importer import run_import
from crm_qbo_plugin.qbo import QboClient, TransientError
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store import cursors
from crm_qbo_plugin.store.tables import Cursor, Link, OutboxEvent, SyncRun
from reference_crm.app import create_app as create_reference_app
from reference_crm.errors import Invalid
from tests.integration.test_inbound_import import _line
from tests.support.inbound import TENANT, CountingHost, Env, inbound_env, seed
from tests.support.reference_crm_app import close, crm_config, new_location, outbox

PAGE = 7
KNOWN = Contact(id="c-known", email="Shared@Example.com", first_name="Known")


class BulkHost(CountingHost):
    """CountingHost plus the optional bulk methods (each call logged)."""

    def __init__(self) -> None:
        super().__init__()
        self.bulk_calls: list[tuple[str, int]] = []

    def upsert_contacts(self, tenant: str, contacts: Sequence[Contact], origin: Origin) -> list[str]:
        self.bulk_calls.append(("contacts", len(contacts)))
        return [self.upsert_contact(tenant, contact, origin) for contact in contacts]

    def upsert_invoices(self, tenant: str, invoices: Sequence[Invoice], origin: Origin) -> list[str]:
        self.bulk_calls.append(("invoices", len(invoices)))
        return [self.upsert_invoice(tenant, invoice, origin) for invoice in invoices]

    def find_contacts_by_email(self, tenant: str, emails: Sequence[str]) -> dict[str, Contact]:
        self.bulk_calls.append(("find", len(emails)))
        return {email: found for email in emails if (found := self.find_contact_by_email(tenant, email)) is not None}


class RenamingHost(CountingHost):
    """Keeps a proposed id only under its own prefix: the plugin must remember the host's id."""

    def upsert_contact(self, tenant: str, contact: Contact, origin: Origin) -> str:
        if contact.id.startswith("qbo-"):
            contact = Contact(**{**contact.__dict__, "id": "h-" + contact.id})
        return super().upsert_contact(tenant, contact, origin)

    def upsert_invoice(self, tenant: str, invoice: Invoice, origin: Origin) -> str:
        assert (tenant, invoice.contact_id) in self.contacts  # the contact was written first
        if invoice.id.startswith("qbo-"):
            invoice = Invoice(**{**invoice.__dict__, "id": "h-" + invoice.id})
        return super().upsert_invoice(tenant, invoice, origin)


class RenamingBulkHost(RenamingHost, BulkHost):
    pass


def _seed(env: Env) -> tuple[list[dict], list[dict]]:
    """Customers with shared, unique and no e-mails, and one inactive (QBO queries leave it out:
    it is not imported); invoices spread over the others."""
    def email(i: int) -> dict:
        if i % 5 == 0:
            return {}
        return {"PrimaryEmailAddr": {"Address": "shared@example.com" if i % 4 == 0 else f"p{i}@example.com"}}
    people = seed(env, "Customer", [{"DisplayName": f"Person {i}", **email(i), **({"Active": False} if i == 23 else {})}
                                    for i in range(24)])
    bills = seed(env, "Invoice", [{"CustomerRef": {"value": people[(i * 5) % 23]["Id"]}, "Line": [_line(f"{3 + i}.25")]}
                                  for i in range(30)])
    return people, bills


def _import(env: Env, host: CountingHost, first_customers_skipped: str | None = None) -> SyncRun:
    """A fresh import for the tenant into `host` (earlier links, checkpoints and runs forgotten)."""
    state = env.state
    with state.engine.begin() as conn:
        for table in (Link, Cursor, SyncRun):
            conn.execute(sa.delete(table.__table__).where(table.__table__.c.tenant_id == TENANT))  # type: ignore[attr-defined]
        if first_customers_skipped:  # those customers are met first through their invoices
            cursors.write(conn, TENANT, importer.stream("Customer"), first_customers_skipped)
    host.contacts[(TENANT, KNOWN.id)] = KNOWN
    state.host = host
    with env.app.app_context():
        run = run_import(state, TENANT)
    assert run is not None
    return run


def _links(env: Env) -> list[tuple]:
    return sorted((r["kind"], r["qbo_id"], r["crm_id"], r["sync_token"], r["owned_hash"], r["origin"], r["status"])
                  for r in env.rows(Link, Link.tenant_id == TENANT))


def test_bulk_and_one_by_one_hosts_get_the_same_records_and_links(plugin_config, sandbox_url, monkeypatch):
    monkeypatch.setattr(importer, "PAGE_SIZE", PAGE)
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        people, bills = _seed(env)
        single = CountingHost()
        run = _import(env, single, first_customers_skipped=people[2]["Id"])
        single_links = _links(env)
        bulk = BulkHost()
        bulk_run = _import(env, bulk, first_customers_skipped=people[2]["Id"])

        assert run.status == bulk_run.status == "succeeded"
        assert run.counts == bulk_run.counts == {"customers_total": 20, "customers_done": 20,
                                                 "invoices_total": 30, "invoices_done": 30}
        assert bulk.contacts == single.contacts and bulk.invoices == single.invoices
        assert _links(env) == single_links
        assert sorted(bulk.writes) == sorted(single.writes)
        assert len(single.contacts) == 23  # 23 active customers; the known contact took the first shared e-mail
        assert len(single.invoices) == 30
        contact_links = {row[1]: row[2] for row in single_links if row[0] == "contact"}
        assert contact_links[people[4]["Id"]] == KNOWN.id  # matched by e-mail, not duplicated
        assert contact_links[people[8]["Id"]] != KNOWN.id  # the same e-mail again: a contact of its own
        for bill in bills:  # each invoice names its customer's contact
            invoice_id = next(r[2] for r in single_links if r[0] == "invoice" and r[1] == bill["Id"])
            assert single.invoices[(TENANT, invoice_id)].contact_id == contact_links[bill["CustomerRef"]["value"]]
        # One bulk call per page and kind: 3 customer pages (20 customers), 5 invoice pages (30
        # invoices); customers 0-2, skipped by the checkpoint, come with invoices 0 and 5 (page 1)
        # and 14 (page 3), so two invoice pages write contacts too.
        assert Counter(kind for kind, _n in bulk.bulk_calls) == {"find": 3, "contacts": 5, "invoices": 5}
        assert sum(n for kind, n in bulk.bulk_calls if kind == "contacts") == 23 - 1
        assert sum(n for kind, n in bulk.bulk_calls if kind == "invoices") == 30


@pytest.mark.parametrize("host_class", [RenamingHost, RenamingBulkHost])
def test_the_hosts_own_ids_go_into_the_links_and_the_invoices(plugin_config, sandbox_url, monkeypatch, host_class):
    monkeypatch.setattr(importer, "PAGE_SIZE", PAGE)
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        people, bills = _seed(env)
        host = host_class()
        run = _import(env, host, first_customers_skipped=people[2]["Id"])
        assert run.status == "succeeded"
        links = _links(env)
        contact_links = {row[1]: row[2] for row in links if row[0] == "contact"}
        invoice_links = {row[1]: row[2] for row in links if row[0] == "invoice"}
        assert len(contact_links) == 23 and len(invoice_links) == 30
        assert {crm_id for crm_id in contact_links.values() if crm_id != KNOWN.id} == {
            contact_id for (_t, contact_id) in host.contacts if contact_id != KNOWN.id}
        assert all(crm_id.startswith("h-qbo-") for crm_id in contact_links.values() if crm_id != KNOWN.id)
        assert set(invoice_links.values()) == {invoice_id for (_t, invoice_id) in host.invoices}
        for bill in bills:
            invoice = host.invoices[(TENANT, invoice_links[bill["Id"]])]
            assert invoice.contact_id == contact_links[bill["CustomerRef"]["value"]]


def test_a_page_interrupted_after_its_host_writes_is_rerun_without_doubles(plugin_config, sandbox_url, monkeypatch):
    monkeypatch.setattr(importer, "PAGE_SIZE", PAGE)
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        people, bills = _seed(env)
        host = BulkHost()
        real_write = cursors.write
        calls: list[str] = []

        def crash_on_the_second_invoice_page(conn: Any, tenant: str, stream: str, value: str) -> None:
            calls.append(stream)
            if calls.count(importer.stream("Invoice")) == 2:
                raise RuntimeError("worker lost before the page committed")
            real_write(conn, tenant, stream, value)

        monkeypatch.setattr(cursors, "write", crash_on_the_second_invoice_page)
        with pytest.raises(RuntimeError, match="worker lost"):
            _import(env, host)
        assert len(host.invoices) == 2 * PAGE  # written to the CRM, but only page 1's links committed
        assert len(env.links("invoice")) == PAGE
        assert cursors.load(env.state.engine, TENANT, importer.stream("Invoice")) == bills[PAGE - 1]["Id"]
        contacts_before = dict(host.contacts)

        monkeypatch.setattr(cursors, "write", real_write)
        with env.app.app_context():
            run = run_import(env.state, TENANT)
        assert run is not None and run.status == "succeeded"
        assert run.counts == {"customers_total": 23, "customers_done": 23, "invoices_total": 30, "invoices_done": 30}
        assert host.contacts == contacts_before and len(host.invoices) == 30
        invoice_links = env.links("invoice")
        assert sorted(r["qbo_id"] for r in invoice_links) == sorted(b["Id"] for b in bills)
        assert {r["crm_id"] for r in invoice_links} == {invoice_id for (_t, invoice_id) in host.invoices}
        assert len(env.links("contact")) == 23


def test_a_bulk_method_answering_the_wrong_count_is_refused(fake_host):
    class Short(BulkHost):
        def upsert_contacts(self, tenant: str, contacts: Sequence[Contact], origin: Origin) -> list[str]:
            return ["only-one"]

    with pytest.raises(HostContractError, match="one non-empty id per record"):
        upsert_contacts(Short(), TENANT, [Contact(id="a", email=None), Contact(id="b", email=None)], Origin.QBO)
    assert upsert_contacts(fake_host, TENANT, [Contact(id="a", email=None)], Origin.QBO) == ["a"]  # no bulk method


# ------------------------------------------------------------------------------------------ publish_many


def _event(key: str, origin: Origin = Origin.QBO, subject: str = "ct_1") -> HostEvent:
    return HostEvent(type=EventType.CONTACT_UPDATED, subject_id=subject, key=key, origin=origin)


def _outbox(app) -> list[tuple]:
    with get_state(app).engine.connect() as conn:
        rows = conn.execute(sa.select(OutboxEvent.__table__).order_by(OutboxEvent.__table__.c.id)).mappings()  # type: ignore[attr-defined]
        return [(r["id"], r["tenant_id"], r["event_key"], r["origin"], r["status"]) for r in rows]


def test_publish_many_records_each_key_once_and_queues_only_crm_changes(plugin_app):
    state = get_state(plugin_app)
    with plugin_app.app_context():
        from crm_qbo_plugin.outbound.intake import publish, publish_many

        first = publish(state, TENANT, _event("k-1"))
        results = publish_many(state, TENANT, [
            _event("k-1"), _event("k-2", Origin.CRM), _event("k-3"), _event("k-2", Origin.CRM, "ct_other"),
        ])
        queued = state.queue.get_job_ids()
        repeat = publish_many(state, TENANT, [_event("k-3"), _event("k-2", Origin.CRM)])
        other_tenant = publish_many(state, "loc-2", [_event("k-1")])
    rows = _outbox(plugin_app)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        (TENANT, "k-1", "qbo", "skipped"), (TENANT, "k-2", "crm", "pending"), (TENANT, "k-3", "qbo", "skipped"),
        ("loc-2", "k-1", "qbo", "skipped"),
    ]
    ids = {r[2] + r[1]: r[0] for r in rows}
    assert [(r.outbox_id, r.created) for r in results] == [
        (first.outbox_id, False), (ids["k-2" + TENANT], True), (ids["k-3" + TENANT], True), (ids["k-2" + TENANT], False)]
    assert [(r.outbox_id, r.created) for r in repeat] == [(ids["k-3" + TENANT], False), (ids["k-2" + TENANT], False)]
    assert [(r.outbox_id, r.created) for r in other_tenant] == [(ids["k-1loc-2"], True)]
    assert len(queued) == 1 and state.queue.get_job_ids() == queued  # only the CRM change, queued once


def test_publish_many_refuses_bad_input_and_writes_nothing(plugin_app):
    state = get_state(plugin_app)
    from crm_qbo_plugin.outbound.intake import publish_many

    with plugin_app.app_context():
        with pytest.raises(EventError, match="event: must be a HostEvent"):
            publish_many(state, TENANT, [_event("k-1"), "k-2"])  # type: ignore[list-item]
        with pytest.raises(EventError, match="tenant"):
            publish_many(state, "", [_event("k-1")])
        with pytest.raises(EventError, match="events: must be a sequence"):
            publish_many(state, TENANT, "k-1")  # type: ignore[arg-type]
        assert publish_many(state, TENANT, []) == []
    assert _outbox(plugin_app) == [] and state.queue.get_job_ids() == []


# ------------------------------------------------------------------------------------------ the reference CRM


@pytest.fixture
def crm(plugin_config):
    app = create_reference_app(crm_config(plugin_config))
    yield app
    close(app)


def test_reference_crm_bulk_upserts_match_the_single_ones(crm):
    host = get_state(crm).host
    client = crm.test_client()
    tenant = new_location(client)["id"]
    other = new_location(client, "Elsewhere")["id"]
    with crm.app_context():
        taken = host.upsert_contact(other, Contact(id="qbo-9-c3", email=None, first_name="Elsewhere"), Origin.QBO)
        existing = host.upsert_contact(tenant, Contact(id="", email="Ada@Example.com", first_name="Ada"), Origin.QBO)
        before = outbox(crm)
        ids = host.upsert_contacts(tenant, [
            Contact(id="qbo-9-c1", email="b@example.com", first_name="Bea"),  # the proposed id is free
            Contact(id="qbo-9-c3", email=None, first_name="Cy"),  # taken by another location: a new id
            Contact(id=existing, email="Ada@Example.com", first_name="Ada"),  # unchanged: no event
            Contact(id=existing, email="Ada@Example.com", first_name="Ada", phone="555"),  # changed
            Contact(id="qbo-9-c1", email="b@example.com", first_name="Bea", last_name="B"),  # again in the batch
        ], Origin.QBO)
        assert host.upsert_contacts(tenant, [], Origin.QBO) == []
        found = host.find_contacts_by_email(tenant, [" ADA@example.com", "b@example.com", "nobody@example.com", ""])
    assert taken == "qbo-9-c3"
    assert ids[0] == ids[4] == "qbo-9-c1" and ids[1].startswith("ct_") and ids[2] == ids[3] == existing
    assert host.get_contact(tenant, ids[1]).first_name == "Cy" and host.get_contact(other, taken).first_name == "Elsewhere"
    assert (host.get_contact(tenant, "qbo-9-c1").last_name, host.get_contact(tenant, existing).phone) == ("B", "555")
    assert outbox(crm)[len(before):] == [
        (tenant, "contact.created", "contact:qbo-9-c1:v1", "qbo", None),
        (tenant, "contact.created", f"contact:{ids[1]}:v1", "qbo", None),
        (tenant, "contact.updated", f"contact:{existing}:v2", "qbo", None),
        (tenant, "contact.updated", "contact:qbo-9-c1:v2", "qbo", None),
    ]
    assert {email: c.id for email, c in found.items()} == {" ADA@example.com": existing, "b@example.com": "qbo-9-c1"}

    def invoice(invoice_id: str, contact_id: str, paid: str = "0") -> Invoice:
        return Invoice(id=invoice_id, contact_id=contact_id, number="1001", status=InvoiceStatus.SENT, currency="usd",
                       issue_date=date(2026, 2, 1), due_date=None, total=Decimal("12.50"), amount_paid=Decimal(paid),
                       lines=(LineItem(name="Thing", quantity=Decimal("2"), unit_price=Decimal("6.25")),), origin=Origin.QBO)

    with crm.app_context():
        single = host.upsert_invoice(tenant, invoice("qbo-9-i1", existing), Origin.QBO)
        before = outbox(crm)
        invoice_ids = host.upsert_invoices(tenant, [
            invoice("qbo-9-i1", existing, "2.50"), invoice("qbo-9-i2", ids[0]), invoice("qbo-9-i2", ids[0], "12.50"),
        ], Origin.QBO)
        with pytest.raises(Invalid):
            host.upsert_invoices(tenant, [invoice("qbo-9-i3", existing), invoice("qbo-9-i4", taken)], Origin.QBO)
    assert single == "qbo-9-i1" and invoice_ids == ["qbo-9-i1", "qbo-9-i2", "qbo-9-i2"]
    first, second = host.get_invoice(tenant, "qbo-9-i1"), host.get_invoice(tenant, "qbo-9-i2")
    assert (first.amount_paid, first.currency, len(first.lines), first.total) == (Decimal("2.50"), "USD", 1, Decimal("12.50"))
    assert (second.amount_paid, second.contact_id, second.lines[0].quantity) == (Decimal("12.50"), ids[0], Decimal("2"))
    assert host.get_invoice(tenant, "qbo-9-i3") is None  # the refused batch wrote nothing
    assert outbox(crm)[len(before):] == [
        (tenant, "invoice.updated", "invoice:qbo-9-i1:v2", "qbo", None),
        (tenant, "invoice.updated", "invoice:qbo-9-i2:v1", "qbo", None),
        (tenant, "invoice.updated", "invoice:qbo-9-i2:v2", "qbo", None),
    ]


def test_a_page_read_failing_in_the_background_pauses_the_run_and_a_later_run_resumes(plugin_config, sandbox_url,
                                                                                     monkeypatch):
    monkeypatch.setattr(importer, "PAGE_SIZE", PAGE)
    with inbound_env(plugin_config, sandbox_url, webhooks=False, import_invoices=True) as env:
        _people, bills = _seed(env)
        real_query = QboClient.query
        broken = {"on": True}

        def failing_query(self: QboClient, statement: str) -> list[dict[str, Any]]:
            if broken["on"] and "FROM Invoice" in statement and "STARTPOSITION 15 " in statement:
                raise TransientError("QuickBooks is unavailable", status=503)
            return real_query(self, statement)

        monkeypatch.setattr(QboClient, "query", failing_query)
        host = BulkHost()
        stopped = _import(env, host)
        assert (stopped.status, stopped.errors) == ("running", ["TransientError: QuickBooks is unavailable (status=503)"])
        assert stopped.counts == {"customers_total": 23, "customers_done": 23, "invoices_total": 30, "invoices_done": 14}
        assert len(env.links("invoice")) == 14 and len(host.invoices) == 14

        broken["on"] = False
        with env.app.app_context():
            run = run_import(env.state, TENANT)
        assert run is not None and (run.id, run.status) == (stopped.id, "succeeded")
        assert run.counts["invoices_done"] == 30 and len(host.invoices) == 30
        assert sorted(r["qbo_id"] for r in env.links("invoice")) == sorted(b["Id"] for b in bills)
