"""Gather both sides for `compare`: the CRM's records through CrmHost, the links from the store,
and the books' customers, invoices, sales receipts and payments (paged queries) — a QuickBooks
company's, or a Xero organisation's in the same shape (xero_sides.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_qbo_plugin.qbo import in_
from crm_qbo_plugin.reconcile.compare import Result, Sides, compare
from crm_qbo_plugin.reconcile.xero_sides import xero_books
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.links import record_links
from crm_qbo_plugin.store.tables import ConnectionStatus
from crm_qbo_plugin.store.types import Provider


class CannotReconcile(Exception):
    """The location is not connected, so there is nothing to compare with."""


@dataclass(frozen=True)
class Report:
    tenant: str
    company: str
    result: Result
    books: str = "QuickBooks"  # or "Xero": what the CLI's sentences name

    @property
    def matches(self) -> bool:
        return not self.result.differences


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row["Id"]): row for row in rows}


def reconcile(state: Services, tenant: str) -> Report:
    conn = connection_for(state.engine, tenant)
    if conn is None or conn.realm_id is None or conn.status == ConnectionStatus.DISCONNECTED.value:
        raise CannotReconcile(f"location {tenant!r} is not connected to QuickBooks or Xero")
    host = state.host
    contacts = {i: c for i in host.list_record_ids(tenant, "contact") if (c := host.get_contact(tenant, i))}
    invoices = {i: v for i in host.list_record_ids(tenant, "invoice") if (v := host.get_invoice(tenant, i))}
    payments = {i: p for i in host.list_record_ids(tenant, "payment") if (p := host.get_payment(tenant, i))}
    links = record_links(state, tenant)
    if conn.provider == Provider.XERO.value:
        customers, qbo_invoices, receipts, qbo_payments = xero_books(state, conn.realm_id, links)
    else:
        with client_for(state, conn.realm_id) as qbo:
            customers = _by_id(qbo.query_all("Customer", where=[in_("Active", [True, False])]))  # inactive too
            qbo_invoices = _by_id(qbo.query_all("Invoice"))
            receipts = _by_id(qbo.query_all("SalesReceipt"))
            qbo_payments = _by_id(qbo.query_all("Payment"))
    sides = Sides(conn.connected_at, card_settings(conn).import_invoices, contacts, invoices, payments, links,
                  customers, qbo_invoices, receipts, qbo_payments)
    books = "Xero" if conn.provider == Provider.XERO.value else "QuickBooks"
    return Report(tenant, conn.company_name or conn.realm_id, compare(sides), books)
