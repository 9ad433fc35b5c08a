"""The daily overdue pass: an invoice past its due date with a balance still open fires
`invoice_overdue` once, for the contact linked to its QBO customer."""

from __future__ import annotations

from datetime import date

from crm_qbo_plugin.automations.claims import fire_once
from crm_qbo_plugin.qbo import gt, lt
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.links import CONTACT, crm_ids_by_qbo
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import utcnow


def fire_overdue(state: Services, conn: Connection, today: date | None = None) -> int:
    if conn.realm_id is None:
        return 0
    today = today or utcnow().date()
    with client_for(state, conn.realm_id) as qbo:
        invoices = qbo.query_all("Invoice", where=[lt("DueDate", today.isoformat()), gt("Balance", 0)])
    customers = {str((inv.get("CustomerRef") or {}).get("value")) for inv in invoices}
    contact_of = crm_ids_by_qbo(state, conn.tenant_id, CONTACT, customers)
    fired = 0
    for inv in invoices:
        contact = contact_of.get(str((inv.get("CustomerRef") or {}).get("value")))
        if contact and fire_once(state, conn.tenant_id, "invoice_overdue", f"invoice:{inv.get('Id')}", contact,
                                 {"qbo_invoice_id": str(inv.get("Id")), "doc_number": inv.get("DocNumber"),
                                  "due_date": inv.get("DueDate"), "balance": str(inv.get("Balance"))}):
            fired += 1
    return fired
