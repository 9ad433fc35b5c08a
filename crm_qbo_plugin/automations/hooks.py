"""Where QBO changes turn into automation triggers. The inbound apply path calls these after it
has applied a QBO invoice, payment or new customer to the CRM (never for our own echoes).

- review_request: the contact's first invoice reached a zero balance with a positive total because
  it was paid — through QBO or a CRM payment (both change the QBO invoice) — while the toggle was on.
- invoice_paid_in_full, payment_received_in_qbo, customer_created_in_qbo: once per QBO record.
- invoice_overdue: from the scheduler's daily pass (see overdue.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crm_qbo_plugin.automations.claims import fire_once
from crm_qbo_plugin.automations.policy import first_invoice, paid_in_full
from crm_qbo_plugin.connections.clients import client_for
from crm_qbo_plugin.qbo import eq, parse_timestamp
from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.tables import Connection


def _summary(invoice: Mapping[str, Any]) -> dict[str, Any]:
    return {"qbo_invoice_id": str(invoice.get("Id")), "doc_number": invoice.get("DocNumber"),
            "total": str(invoice.get("TotalAmt")), "currency": (invoice.get("CurrencyRef") or {}).get("value")}


def _settled_while_on(conn: Connection, invoice: Mapping[str, Any]) -> bool:
    since = conn.settings.get("review_request_since")
    if not since:
        return True  # on from the start (set before connecting)
    updated = (invoice.get("MetaData") or {}).get("LastUpdatedTime")
    return bool(updated) and parse_timestamp(str(updated)) >= datetime.fromisoformat(str(since))


def after_invoice_applied(state: PluginState, conn: Connection, invoice: Mapping[str, Any], contact_id: str | None) -> list[str]:
    """Fire what a QBO invoice's new state calls for; returns the triggers fired (for runs/logs)."""
    fired: list[str] = []
    if contact_id is None or not paid_in_full(invoice):
        return fired
    if fire_once(state, conn.tenant_id, "invoice_paid_in_full", f"invoice:{invoice.get('Id')}", contact_id, _summary(invoice)):
        fired.append("invoice_paid_in_full")
    if conn.settings.get("review_request") and _settled_while_on(conn, invoice) and conn.realm_id:
        customer = str((invoice.get("CustomerRef") or {}).get("value") or "")
        with client_for(state, conn.realm_id) as qbo:
            invoices = qbo.query_all("Invoice", where=[eq("CustomerRef", customer)])
        first = first_invoice(invoices)
        is_first = first is not None and str(first.get("Id")) == str(invoice.get("Id"))
        if is_first and fire_once(state, conn.tenant_id, "review_request", contact_id, contact_id, _summary(invoice)):
            fired.append("review_request")
    return fired


def after_payment_applied(state: PluginState, conn: Connection, payment: Mapping[str, Any], contact_id: str | None) -> bool:
    if contact_id is None:
        return False
    return fire_once(state, conn.tenant_id, "payment_received_in_qbo", f"payment:{payment.get('Id')}", contact_id,
                     {"qbo_payment_id": str(payment.get("Id")), "amount": str(payment.get("TotalAmt"))})


def after_customer_created(state: PluginState, conn: Connection, customer: Mapping[str, Any], contact_id: str) -> bool:
    return fire_once(state, conn.tenant_id, "customer_created_in_qbo", f"customer:{customer.get('Id')}", contact_id,
                     {"qbo_customer_id": str(customer.get("Id")), "display_name": customer.get("DisplayName")})
