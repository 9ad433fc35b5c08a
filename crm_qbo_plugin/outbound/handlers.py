"""The push handler for each host event type: the processor calls HANDLERS[event_type](state, row,
connection) once the gate has passed. Handlers raise processor.Skip, RetryLater or a QboError."""

from __future__ import annotations

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.outbound.batching import push_invoice_or_batch
from crm_qbo_plugin.outbound.customers import push_contact
from crm_qbo_plugin.outbound.invoices import push_invoice
from crm_qbo_plugin.outbound.payments import payment_kind, push_payment
from crm_qbo_plugin.outbound.processor import Handler
from crm_qbo_plugin.outbound.tracking import tracked
from crm_qbo_plugin.store.links import CONTACT, INVOICE

_contact = tracked(lambda row: CONTACT, "contact", push_contact)
_invoice = tracked(lambda row: INVOICE, "invoice", push_invoice)

HANDLERS: dict[str, Handler] = {
    EventType.CONTACT_CREATED.value: _contact,
    EventType.CONTACT_UPDATED.value: _contact,
    EventType.PAYMENT_RECEIVED.value: tracked(payment_kind, "payment", push_payment),
    EventType.INVOICE_SENT.value: tracked(lambda row: INVOICE, "invoice", push_invoice_or_batch),
    EventType.INVOICE_UPDATED.value: _invoice,
    EventType.INVOICE_VOIDED.value: _invoice,
    EventType.INVOICE_DELETED.value: _invoice,
}
