"""Where changes in the books (QuickBooks or Xero) turn into automation triggers. Both inbound
apply paths call these after they have applied an invoice, payment or new customer to the CRM
(never for our own echoes); automations/facts.py reads either provider's records.

- review_request: the contact's first invoice reached a zero balance with a positive total because
  it was paid — through QBO or a CRM payment (both change the QBO invoice) — while the toggle was on.
- invoice_paid_in_full, payment_received_in_qbo, customer_created_in_qbo: once per QBO record.
- invoice_overdue: from the scheduler's daily pass (see overdue.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from crm_qbo_plugin.automations.claims import fire_once
from crm_qbo_plugin.automations.facts import (
    customer_facts,
    first_invoice_id,
    invoice_facts,
    payment_facts,
)
from crm_qbo_plugin.qbo import eq
from crm_qbo_plugin.runtime.clients import client_for, xero_client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import claims
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.tables import Connection
from crm_qbo_plugin.store.types import Provider

EVER = datetime(2000, 1, 1, tzinfo=UTC)  # "modified since" for every invoice of a Xero contact


def _since_connect(conn: Connection, when: datetime | None) -> bool:
    """Triggers are about what happens from now on: history met at import time never fires."""
    return conn.connected_at is None or (when is not None and when >= conn.connected_at)


def _settled_while_on(conn: Connection, updated: datetime | None) -> bool:
    since = card_settings(conn).review_request_since
    if since is None:
        return True  # on from the start (set before connecting)
    return updated is not None and updated >= since


def _claimed(state: Services, tenant: str, trigger: str, subject_id: str) -> bool:
    return claims.fired(state.engine, tenant, trigger, subject_id)


def _customer_invoices(state: Services, conn: Connection, customer: str) -> Iterator[Mapping[str, Any]]:
    """Every invoice of one customer of the books (QuickBooks' or Xero's)."""
    assert conn.realm_id
    if conn.provider == Provider.XERO.value:
        where = f'Type=="ACCREC"&&Contact.ContactID==Guid("{customer}")'
        with closing(xero_client_for(state, conn.realm_id)) as xero:
            for page in xero.changed("Invoices", EVER, where=where):
                yield from page
        return
    with client_for(state, conn.realm_id) as qbo:
        yield from qbo.query_all("Invoice", where=[eq("CustomerRef", customer)])


def after_invoice_applied(state: Services, conn: Connection, invoice: Mapping[str, Any], contact_id: str | None) -> list[str]:
    """Fire what an invoice's new state in the books calls for; returns the triggers fired (for runs/logs)."""
    fired: list[str] = []
    facts = invoice_facts(conn.provider, invoice)
    if contact_id is None or not facts.paid_in_full or not _since_connect(conn, facts.updated):
        return fired
    if fire_once(state, conn.tenant_id, "invoice_paid_in_full", f"invoice:{facts.id}", contact_id, facts.summary()):
        fired.append("invoice_paid_in_full")
    wanted = card_settings(conn).review_request and _settled_while_on(conn, facts.updated)
    if conn.realm_id and wanted and not _claimed(state, conn.tenant_id, "review_request", contact_id):  # no query once done
        first = first_invoice_id(conn.provider, list(_customer_invoices(state, conn, facts.contact_ref)))
        if first == facts.id and fire_once(state, conn.tenant_id, "review_request", contact_id, contact_id,
                                           facts.summary()):
            fired.append("review_request")
    return fired


def after_payment_applied(state: Services, conn: Connection, payment: Mapping[str, Any], contact_id: str | None) -> bool:
    """A payment recorded in the books (the caller passes no payment the plugin wrote itself)."""
    facts = payment_facts(conn.provider, payment)
    if contact_id is None or not _since_connect(conn, facts.created):
        return False
    return fire_once(state, conn.tenant_id, "payment_received_in_qbo", f"payment:{facts.id}", contact_id, facts.payload)


def after_customer_created(state: Services, conn: Connection, customer: Mapping[str, Any], contact_id: str) -> bool:
    """A customer created in the books after the connection (imports of older ones never fire)."""
    facts = customer_facts(conn.provider, customer)
    if not _since_connect(conn, facts.created):
        return False
    return fire_once(state, conn.tenant_id, "customer_created_in_qbo", f"customer:{facts.id}", contact_id, facts.payload)
