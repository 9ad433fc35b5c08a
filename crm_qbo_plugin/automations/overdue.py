"""The daily overdue pass: an invoice past its due date with a balance still open fires
`invoice_overdue` once, for the contact linked to its customer in the books (QuickBooks or Xero)."""

from __future__ import annotations

from contextlib import closing
from datetime import date
from typing import Any

from crm_qbo_plugin.automations.claims import fire_once
from crm_qbo_plugin.automations.hooks import EVER
from crm_qbo_plugin.qbo import gt, lt
from crm_qbo_plugin.runtime.clients import client_for, xero_client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.links import CONTACT, crm_ids_by_qbo
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import Provider, utcnow
from crm_qbo_plugin.xero import parse_date


def _iso(xero_date: Any) -> str | None:
    return parse_date(str(xero_date)).isoformat() if xero_date else None


def _overdue(state: Services, conn: Connection, today: date) -> list[dict[str, Any]]:
    """(invoice id, customer id, number, due date, balance) of each overdue invoice, in one shape."""
    assert conn.realm_id
    if conn.provider == Provider.XERO.value:
        where = (f'Type=="ACCREC"&&Status=="AUTHORISED"&&AmountDue>0'
                 f'&&DueDate<DateTime({today.year},{today.month},{today.day})')
        with closing(xero_client_for(state, conn.realm_id)) as xero:
            rows = [i for page in xero.changed("Invoices", EVER, page_size=1000, where=where) for i in page]
        return [{"id": str(i.get("InvoiceID")), "customer": str((i.get("Contact") or {}).get("ContactID")),
                 "number": i.get("InvoiceNumber"), "due": _iso(i.get("DueDate")),
                 "balance": str(i.get("AmountDue"))} for i in rows]
    with client_for(state, conn.realm_id) as qbo:
        rows = qbo.query_all("Invoice", where=[lt("DueDate", today.isoformat()), gt("Balance", 0)])
    return [{"id": str(i.get("Id")), "customer": str((i.get("CustomerRef") or {}).get("value")),
             "number": i.get("DocNumber"), "due": i.get("DueDate"), "balance": str(i.get("Balance"))} for i in rows]


def fire_overdue(state: Services, conn: Connection, today: date | None = None) -> int:
    if conn.realm_id is None:
        return 0
    invoices = _overdue(state, conn, today or utcnow().date())
    contact_of = crm_ids_by_qbo(state, conn.tenant_id, CONTACT, {inv["customer"] for inv in invoices})
    fired = 0
    for inv in invoices:
        contact = contact_of.get(inv["customer"])
        if contact and fire_once(state, conn.tenant_id, "invoice_overdue", f"invoice:{inv['id']}", contact,
                                 {"qbo_invoice_id": inv["id"], "doc_number": inv["number"],
                                  "due_date": inv["due"], "balance": inv["balance"]}):
            fired += 1
    return fired
