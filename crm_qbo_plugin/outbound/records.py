"""Retry and Ignore for one record, as the card's API offers them.

Retry re-publishes the latest outbox row for the record (same row, same stored requestid, so a
write that did reach QBO is replayed rather than repeated) and enqueues it. Ignore marks the
record's link ignored; every later push of it is skipped with that reason until a retry.
"""

from __future__ import annotations

from contextlib import suppress
from uuid import uuid4

import redis

from crm_qbo_plugin.events import EventType, HostEvent
from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.outbound.intake import publish
from crm_qbo_plugin.outbound.invoices import MANUAL_EXPORT
from crm_qbo_plugin.runtime.queue import enqueue_outbox
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import outbox
from crm_qbo_plugin.store.links import (
    CONTACT,
    IGNORED,
    INVOICE,
    ITEM,
    PAYMENT,
    PENDING,
    SALES_RECEIPT,
    get_link,
    set_status,
)
from crm_qbo_plugin.store.tables import OutboxStatus
from crm_qbo_plugin.store.types import utcnow

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    CONTACT: (EventType.CONTACT_CREATED.value, EventType.CONTACT_UPDATED.value),
    INVOICE: (EventType.INVOICE_SENT.value, EventType.INVOICE_UPDATED.value, EventType.INVOICE_VOIDED.value,
              EventType.INVOICE_DELETED.value),
    SALES_RECEIPT: (EventType.PAYMENT_RECEIVED.value,),
    PAYMENT: (EventType.PAYMENT_RECEIVED.value,),
}
KINDS = (*EVENT_TYPES, ITEM)


class RecordNotFound(LookupError):
    """No such record for this tenant (nothing was changed)."""


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)}")


def retry_record(state: Services, tenant: str, kind: str, crm_id: str) -> int:
    """Re-publish the record's latest outbox row; returns its id. The link goes back to pending."""
    _check_kind(kind)
    if kind not in EVENT_TYPES:
        raise RecordNotFound("items are pushed with the invoices and receipts that use them")
    now = utcnow()
    row = outbox.latest_for(state.engine, tenant, crm_id, EVENT_TYPES[kind])
    if row is None:
        raise RecordNotFound(f"no {kind.replace('_', ' ')} {crm_id} waits to be pushed")
    outbox_id = row.id
    assert outbox_id is not None
    if row.status == OutboxStatus.PROCESSING.value and row.lease_until and row.lease_until > now:
        return outbox_id  # running right now
    outbox.reopen(state.engine, row, now)
    link = get_link(state, tenant, kind, crm_id)
    if link is not None:
        # Retrying an invoice held back by "Export automatically" being off is exporting it by hand.
        held_back = kind == INVOICE and (link.detail or {}).get("reason") == "export_off"
        set_status(state, tenant, kind, crm_id, PENDING, None, detail={MANUAL_EXPORT: True} if held_back else None)
    with suppress(redis.RedisError):  # else the sweeper enqueues it when the lease runs out
        enqueue_outbox(state.queue, outbox_id)
    return outbox_id


def export_invoice(state: Services, tenant: str, invoice_id: str) -> int:
    """"Send to QuickBooks" on one CRM invoice: exported even while automatic export is off (the
    invoice's link carries the request, outbound/invoices.py check_eligible lets it through).
    Returns the outbox row's id; RecordNotFound (nothing changed) when the CRM has no such sent
    invoice of its own or it is in QuickBooks already."""
    invoice = state.host.get_invoice(tenant, invoice_id)
    if invoice is None or invoice.sent_at is None or invoice.origin is not Origin.CRM:
        raise RecordNotFound(f"no sent CRM invoice {invoice_id} to export")
    link = get_link(state, tenant, INVOICE, invoice_id)
    if link is not None and (link.qbo_id or link.origin != Origin.CRM.value):
        raise RecordNotFound(f"invoice {invoice_id} is in QuickBooks already")
    set_status(state, tenant, INVOICE, invoice_id, PENDING, None, detail={MANUAL_EXPORT: True})
    try:
        return retry_record(state, tenant, INVOICE, invoice_id)
    except RecordNotFound:  # the host never told us it was sent: ask for it now
        event = HostEvent(type=EventType.INVOICE_SENT, subject_id=invoice_id, key=f"export:{invoice_id}:{uuid4().hex}")
        return publish(state, tenant, event).outbox_id


def ignore_record(state: Services, tenant: str, kind: str, crm_id: str) -> None:
    """Mark the record ignored: skipped from now on, until someone retries it."""
    _check_kind(kind)
    if (get_link(state, tenant, kind, crm_id) is None and kind in EVENT_TYPES
            and outbox.latest_for(state.engine, tenant, crm_id, EVENT_TYPES[kind]) is None):
        raise RecordNotFound(f"no {kind.replace('_', ' ')} {crm_id} is known for this location")
    set_status(state, tenant, kind, crm_id, IGNORED, "ignored on the QuickBooks card")
