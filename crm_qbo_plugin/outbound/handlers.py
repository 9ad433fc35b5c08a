"""The push handler for each provider and host event type: the processor calls
HANDLERS[connection.provider][event_type](state, row, connection) once the gate has passed — the one
place the engine chooses between QuickBooks and Xero for a push. Handlers raise processor.Skip,
RetryLater or their client's errors."""

from __future__ import annotations

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound import xero_batching, xero_contacts, xero_invoices, xero_payments
from crm_qbo_plugin.outbound.batching import push_invoice_or_batch
from crm_qbo_plugin.outbound.customers import push_contact
from crm_qbo_plugin.outbound.invoices import push_invoice
from crm_qbo_plugin.outbound.payments import payment_kind, push_payment
from crm_qbo_plugin.outbound.processor import Handler, Handlers
from crm_qbo_plugin.outbound.tracking import tracked, tracked_xero
from crm_qbo_plugin.store.links import CONTACT, INVOICE
from crm_qbo_plugin.store.types import Provider

_contact = tracked(lambda row: CONTACT, "contact", push_contact)
_invoice = tracked(lambda row: INVOICE, "invoice", push_invoice)

QUICKBOOKS_HANDLERS: dict[str, Handler] = {
    EventType.CONTACT_CREATED.value: _contact,
    EventType.CONTACT_UPDATED.value: _contact,
    EventType.PAYMENT_RECEIVED.value: tracked(payment_kind, "payment", push_payment),
    EventType.INVOICE_SENT.value: tracked(lambda row: INVOICE, "invoice", push_invoice_or_batch),
    EventType.INVOICE_UPDATED.value: _invoice,
    EventType.INVOICE_VOIDED.value: _invoice,
    EventType.INVOICE_DELETED.value: _invoice,
}

_xero_contact = tracked_xero(lambda row: CONTACT, "contact", xero_contacts.push_contact)
_xero_invoice = tracked_xero(lambda row: INVOICE, "invoice", xero_invoices.push_invoice)

XERO_HANDLERS: dict[str, Handler] = {
    EventType.CONTACT_CREATED.value: _xero_contact,
    EventType.CONTACT_UPDATED.value: _xero_contact,
    EventType.PAYMENT_RECEIVED.value: tracked_xero(payment_kind, "payment", xero_payments.push_payment),
    EventType.INVOICE_SENT.value: tracked_xero(lambda row: INVOICE, "invoice", xero_batching.push_invoice_or_batch),
    EventType.INVOICE_UPDATED.value: _xero_invoice,
    EventType.INVOICE_VOIDED.value: _xero_invoice,
    EventType.INVOICE_DELETED.value: _xero_invoice,
}

HANDLERS: Handlers = {Provider.QUICKBOOKS.value: QUICKBOOKS_HANDLERS, Provider.XERO.value: XERO_HANDLERS}


def fresh_handlers() -> Handlers:
    """A copy a Services may change (tests swap a handler in) without touching the module's."""
    return {provider: dict(table) for provider, table in HANDLERS.items()}
