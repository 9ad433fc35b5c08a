"""A CDC poll (or a webhook drain) compares each changed record with the CRM's copy: with the
reference CRM it reads those copies with one `get_contacts` and one `get_invoices` call per batch,
never one `get_contact` / `get_invoice` per change; the bulk reads answer what the single ones do."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from crm_qbo_plugin import Contact, Invoice, InvoiceStatus, LineItem, Origin
from crm_qbo_plugin.host import HostContractError, get_contacts
from crm_qbo_plugin.inbound.cdc import poll
from crm_qbo_plugin.inbound.importer import run_import
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import RunStatus
from reference_crm.app import create_app
from tests.support.connected import connect_directly
from tests.support.reference_crm_app import close, crm_config, new_location
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app


def _line(amount: str) -> dict[str, Any]:
    value = Decimal(amount)
    return {"DetailType": "SalesItemLineDetail", "Amount": value,
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal("1"), "UnitPrice": value}}


@pytest.fixture
def crm(plugin_config: dict[str, Any], sandbox_url: str) -> Iterator[Flask]:
    register_app(sandbox_url)
    app = create_app(crm_config({**plugin_config, **plugin_overrides(sandbox_url)}))
    yield app
    close(app)


def test_a_poll_reads_the_crm_copies_of_changed_records_in_one_call_per_kind(crm, sandbox_url, monkeypatch):
    tenant = new_location(crm.test_client())["id"]
    realm = create_company(sandbox_url, name="Bulk Reads")
    connect_directly(crm, tenant, sandbox_url, realm, import_invoices=True)
    state = get_state(crm)
    with crm.app_context(), client_for(state, realm) as qbo:
        customers = [qbo.create("Customer", {"DisplayName": f"Reader {n}", "GivenName": f"Reader{n}"}) for n in range(4)]
        invoices = [qbo.create("Invoice", {"CustomerRef": {"value": c["Id"]}, "Line": [_line("10.00")]}) for c in customers]
        assert run_import(state, tenant).status == RunStatus.SUCCEEDED.value
        for n, customer in enumerate(customers):
            qbo.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True,
                                    "PrimaryPhone": {"FreeFormNumber": f"555-010{n}"}})
        for invoice in invoices:
            qbo.update("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True,
                                   "DueDate": "2031-01-15"})
    host = state.host
    calls: list[tuple[str, int]] = []
    for name in ("get_contact", "get_invoice", "get_contacts", "get_invoices"):
        method = getattr(host, name)

        def spy(tenant_id: str, wanted: Any, _name: str = name, _method: Any = method) -> Any:
            calls.append((_name, 1 if isinstance(wanted, str) else len(wanted)))
            return _method(tenant_id, wanted)

        monkeypatch.setattr(host, name, spy)
    with crm.app_context():
        run = poll(state, tenant)
    assert run is not None and run.status == RunStatus.SUCCEEDED.value and run.errors == []
    assert (run.counts["changes"], run.counts["applied"]) == (8, 8)
    assert sorted(calls) == [("get_contacts", 4), ("get_invoices", 4)]
    monkeypatch.undo()
    with crm.app_context():
        contacts = {c.first_name: c.phone for c in (host.get_contact(tenant, cid) for cid in host.list_record_ids(tenant, "contact"))
                    if c is not None}
        due = {i.due_date for i in (host.get_invoice(tenant, iid) for iid in host.list_record_ids(tenant, "invoice"))
               if i is not None}
    assert contacts == {f"Reader{n}": f"555-010{n}" for n in range(4)}
    assert due == {date(2031, 1, 15)}


def test_reference_crm_bulk_reads_match_the_single_ones(crm):
    client = crm.test_client()
    tenant = new_location(client)["id"]
    other = new_location(client, "Elsewhere")["id"]
    host = get_state(crm).host
    line = LineItem(name="Thing", quantity=Decimal("2"), unit_price=Decimal("6.25"), description="two")
    with crm.app_context():
        ada = host.upsert_contact(tenant, Contact(id="", email="ada@example.com", first_name="Ada"), Origin.QBO)
        bea = host.upsert_contact(tenant, Contact(id="", email=None, first_name="Bea", active=False), Origin.QBO)
        theirs = host.upsert_contact(other, Contact(id="", email=None, first_name="Cy"), Origin.QBO)

        def invoice(contact_id: str, status: InvoiceStatus) -> Invoice:
            return Invoice(id="", contact_id=contact_id, number="1001", status=status, currency="USD",
                           issue_date=date(2026, 2, 1), due_date=None, total=Decimal("12.50"), amount_paid=Decimal("0"),
                           lines=(line, line), origin=Origin.QBO)

        kept = host.upsert_invoice(tenant, invoice(ada, InvoiceStatus.SENT), Origin.QBO)
        gone = host.upsert_invoice(tenant, invoice(bea, InvoiceStatus.DELETED), Origin.QBO)
        elsewhere = host.upsert_invoice(other, invoice(theirs, InvoiceStatus.SENT), Origin.QBO)
        found_contacts = host.get_contacts(tenant, [ada, "nobody", theirs, bea, ada])
        found_invoices = host.get_invoices(tenant, [gone, elsewhere, kept, "nothing"])
        assert found_contacts == {ada: host.get_contact(tenant, ada), bea: host.get_contact(tenant, bea)}
        assert found_invoices == {kept: host.get_invoice(tenant, kept), gone: host.get_invoice(tenant, gone)}
        assert found_invoices[gone].status is InvoiceStatus.DELETED and found_invoices[kept].lines == (line, line)
        assert host.get_contacts(tenant, []) == {} and host.get_invoices(tenant, []) == {}


class _SingleReadsOnly:
    """A host without the optional bulk reads."""

    def __init__(self, contacts: dict[str, Contact]) -> None:
        self.contacts = contacts

    def get_contact(self, tenant: str, contact_id: str) -> Contact | None:
        return self.contacts.get(contact_id)


class _WrongBulk(_SingleReadsOnly):
    def get_contacts(self, tenant: str, ids: list[str]) -> Any:
        return {i: self.contacts["a"] for i in ids}


def test_without_bulk_reads_each_record_is_read_alone_and_a_wrong_answer_is_refused():
    ada = Contact(id="a", email=None, first_name="Ada")
    assert get_contacts(_SingleReadsOnly({"a": ada}), "t", ["a", "b", "a"]) == {"a": ada}  # type: ignore[arg-type]
    with pytest.raises(HostContractError):
        get_contacts(_WrongBulk({"a": ada}), "t", ["a", "b"])  # type: ignore[arg-type]
