"""Changes the connection keeps from QuickBooks for now, shown on the record so none goes unseen.

Disconnected: a change that would have been pushed is kept as a "not synced" record. It is not
sent by itself after reconnecting (no retroactive sync: the books may have been kept by hand
meanwhile, and a late push could double them); Retry on the card sends it, once.
Needs reconnecting (Intuit stopped accepting the authorisation): the change waits as "pending" with
the reason, and goes out by itself once the location reconnects.
"""

from __future__ import annotations

from contextlib import suppress

from redis.exceptions import LockError

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.host import Origin, PaymentSource
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.links import (
    CONFLICT,
    CONTACT,
    DELETED,
    IGNORED,
    INVOICE,
    NOT_SYNCED,
    PAYMENT,
    PENDING,
    SALES_RECEIPT,
    SYNCED,
    get_link,
    push_lock_key,
    set_status,
)
from crm_qbo_plugin.store.tables import Link, OutboxEvent

LOCK_SECONDS = 300  # as a push holds it (outbound/context.py)
LOCK_WAIT_SECONDS = 30
WAITING_FOR_RECONNECT = "waiting for QuickBooks to be reconnected; it is sent by itself once you reconnect"
_VERBS = {
    EventType.INVOICE_SENT.value: "sent", EventType.INVOICE_UPDATED.value: "changed",
    EventType.INVOICE_VOIDED.value: "voided", EventType.INVOICE_DELETED.value: "deleted",
    EventType.PAYMENT_RECEIVED.value: "taken", EventType.CONTACT_UPDATED.value: "changed",
}


def not_synced_reason(event_type: str) -> str:
    verb = _VERBS.get(event_type, "changed")
    return f"not synced — {verb} while QuickBooks was disconnected; Retry sends it to QuickBooks"


def kind_of(row: OutboxEvent) -> str | None:
    """The record kind (as on the card) an outbox row pushes."""
    if row.event_type.startswith("invoice."):
        return INVOICE
    if row.event_type.startswith("contact."):
        return CONTACT
    if row.event_type == EventType.PAYMENT_RECEIVED.value:
        return PAYMENT if row.source == PaymentSource.INVOICE.value else SALES_RECEIPT
    return None


def _would_push(row: OutboxEvent, kind: str, link: Link | None) -> bool:
    """Whether the push would write to QuickBooks (anything else it skips anyway, with a reason)."""
    if link is not None and link.status in (IGNORED, DELETED):
        return False
    if kind == CONTACT:  # contact events only update customers that exist already
        return row.event_type == EventType.CONTACT_UPDATED.value and link is not None and bool(link.qbo_id)
    if kind == INVOICE:
        if link is None or not link.qbo_id:  # a void or delete of an invoice QuickBooks never had: nothing to do
            return row.event_type in (EventType.INVOICE_SENT.value, EventType.INVOICE_UPDATED.value)
        return True
    return link is None or not (link.qbo_id and link.status in (SYNCED, CONFLICT))


def _was_connected(state: Services, tenant: str) -> bool:
    conn = connection_for(state.engine, tenant)
    return conn is not None and conn.pinned_realm_id is not None


class PushInFlight(Exception):
    """A push of the record that began before the disconnect is still running: its outcome would
    overwrite the "not synced" mark, so the change is held after it, on a retry."""


def hold_disconnected(state: Services, row: OutboxEvent) -> str | None:
    """Keep a change made while disconnected as a visible "not synced" record; returns the reason
    shown, or None when there is nothing to keep (never connected, or nothing would be pushed).
    Marked under the record's push lock, so a push still in flight cannot mark it synced after."""
    kind = kind_of(row)
    if kind is None or not _was_connected(state, row.tenant_id):
        return None
    lock = state.redis.lock(push_lock_key(row.tenant_id, kind, row.subject_id), timeout=LOCK_SECONDS,
                            blocking_timeout=LOCK_WAIT_SECONDS)
    if not lock.acquire():
        raise PushInFlight(f"another worker is pushing this {kind.replace('_', ' ')}")
    try:
        return _hold(state, row, kind)
    finally:
        with suppress(LockError):  # expired meanwhile: nothing to release
            lock.release()


def _hold(state: Services, row: OutboxEvent, kind: str) -> str | None:
    link = get_link(state, row.tenant_id, kind, row.subject_id)
    if not _would_push(row, kind, link):
        return None
    if link is not None and link.status == NOT_SYNCED:
        return link.last_error  # the first change held names what happened
    reason = not_synced_reason(row.event_type)
    if kind == INVOICE and link is not None and link.origin == Origin.QBO.value:
        reason = ("not synced — changed while QuickBooks was disconnected; QuickBooks owns this invoice, so nothing "
                  "is sent: Retry checks whether the CRM's copy now differs")
    set_status(state, row.tenant_id, kind, row.subject_id, NOT_SYNCED, reason)
    return reason


def show_waiting(state: Services, row: OutboxEvent) -> None:
    """List a change parked until the location reconnects as pending, with the reason."""
    kind = kind_of(row)
    if kind is None:
        return
    link = get_link(state, row.tenant_id, kind, row.subject_id)
    if _would_push(row, kind, link):
        set_status(state, row.tenant_id, kind, row.subject_id, PENDING, WAITING_FOR_RECONNECT)
