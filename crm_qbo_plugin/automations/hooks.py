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
from crm_qbo_plugin.qbo import eq, parse_timestamp
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import claims
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.tables import Connection


def _summary(invoice: Mapping[str, Any]) -> dict[str, Any]:
    return {"qbo_invoice_id": str(invoice.get("Id")), "doc_number": invoice.get("DocNumber"),
            "total": str(invoice.get("TotalAmt")), "currency": (invoice.get("CurrencyRef") or {}).get("value")}


def _stamp(body: Mapping[str, Any], field: str) -> datetime | None:
    value = (body.get("MetaData") or {}).get(field)
    return parse_timestamp(str(value)) if value else None


def _since_connect(conn: Connection, body: Mapping[str, Any], field: str = "LastUpdatedTime") -> bool:
    """Triggers are about what happens from now on: history met at import time never fires."""
    when = _stamp(body, field)
    return conn.connected_at is None or (when is not None and when >= conn.connected_at)


def _settled_while_on(conn: Connection, invoice: Mapping[str, Any]) -> bool:
    since = card_settings(conn).review_request_since
    if since is None:
        return True  # on from the start (set before connecting)
    updated = _stamp(invoice, "LastUpdatedTime")
    return updated is not None and updated >= since


def _claimed(state: Services, tenant: str, trigger: str, subject_id: str) -> bool:
    return claims.fired(state.engine, tenant, trigger, subject_id)


def after_invoice_applied(state: Services, conn: Connection, invoice: Mapping[str, Any], contact_id: str | None) -> list[str]:
    """Fire what a QBO invoice's new state calls for; returns the triggers fired (for runs/logs)."""
    fired: list[str] = []
    if contact_id is None or not paid_in_full(invoice) or not _since_connect(conn, invoice):
        return fired
    if fire_once(state, conn.tenant_id, "invoice_paid_in_full", f"invoice:{invoice.get('Id')}", contact_id, _summary(invoice)):
        fired.append("invoice_paid_in_full")
    realm = conn.realm_id
    wanted = card_settings(conn).review_request and _settled_while_on(conn, invoice)
    if realm and wanted and not _claimed(state, conn.tenant_id, "review_request", contact_id):  # no query once done
        customer = str((invoice.get("CustomerRef") or {}).get("value") or "")
        with client_for(state, realm) as qbo:
            invoices = qbo.query_all("Invoice", where=[eq("CustomerRef", customer)])
        first = first_invoice(invoices)
        is_first = first is not None and str(first.get("Id")) == str(invoice.get("Id"))
        if is_first and fire_once(state, conn.tenant_id, "review_request", contact_id, contact_id, _summary(invoice)):
            fired.append("review_request")
    return fired


def after_payment_applied(state: Services, conn: Connection, payment: Mapping[str, Any], contact_id: str | None) -> bool:
    """A payment recorded in QuickBooks (the caller passes no payment the plugin wrote itself)."""
    if contact_id is None or not _since_connect(conn, payment, "CreateTime"):
        return False
    return fire_once(state, conn.tenant_id, "payment_received_in_qbo", f"payment:{payment.get('Id')}", contact_id,
                     {"qbo_payment_id": str(payment.get("Id")), "amount": str(payment.get("TotalAmt"))})


def after_customer_created(state: Services, conn: Connection, customer: Mapping[str, Any], contact_id: str) -> bool:
    """A customer created in QuickBooks after the connection (imports of older ones never fire)."""
    if not _since_connect(conn, customer, "CreateTime"):
        return False
    return fire_once(state, conn.tenant_id, "customer_created_in_qbo", f"customer:{customer.get('Id')}", contact_id,
                     {"qbo_customer_id": str(customer.get("Id")), "display_name": customer.get("DisplayName")})
