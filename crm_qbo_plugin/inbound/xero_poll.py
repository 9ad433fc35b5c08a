"""The modified-since poll of a Xero organisation: what changed in Xero about the invoices the CRM
sent (a payment taken in Xero, a void) comes back to the CRM's invoice. Xero's webhook notices
(web/xero_webhooks.py) wait in the same inbox as QuickBooks' and queue a poll, which applies them
after its read: each is re-read by id (a notice is not data), then marked applied or skipped.

Each poll reads the invoices modified since the tenant's watermark (oldest first, `If-Modified-
Since`), under the organisation's realm lock (one poll of a company at a time), and moves the
watermark to the newest `UpdatedDateUTC` it applied. The plugin's own writes come back too: one
whose version (`UpdatedDateUTC`) and owned fields the write ledger holds is our echo and dropped,
so nothing loops. Invoices made in Xero (not linked to a CRM invoice) are not imported yet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crm_qbo_plugin.host import InvoiceStatus, Origin
from crm_qbo_plugin.inbound.enqueue import request_xero_poll
from crm_qbo_plugin.mapping.owned import owned_hash
from crm_qbo_plugin.mapping.xero_imported_invoice import amount_paid, invoice_status
from crm_qbo_plugin.mapping.xero_record import as_written
from crm_qbo_plugin.runtime.clients import xero_client_for
from crm_qbo_plugin.runtime.realm_lock import holding
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import cursors, inbox
from crm_qbo_plugin.store.connections import connected, connection_for
from crm_qbo_plugin.store.links import INVOICE, Ledger, link_by_qbo_id
from crm_qbo_plugin.store.tables import ConnectionStatus, InboxStatus
from crm_qbo_plugin.store.types import Provider
from crm_qbo_plugin.xero import NotFoundError, XeroClient, parse_timestamp

log = logging.getLogger(__name__)

STREAM = "xero:invoices:modified"
ENTITY = "XeroInvoice"
# Xero's UpdatedDateUTC has millisecond precision and If-Modified-Since whole seconds: ask from a
# second before the watermark; what was applied already is unchanged and skipped.
OVERLAP = timedelta(seconds=1)


@dataclass
class PollResult:
    status: str  # polled | busy | not-connected
    applied: int = 0
    skipped: int = 0


def poll_xero(state: Services, tenant: str) -> PollResult:
    """Read what changed in the tenant's Xero organisation since the watermark and apply it."""
    conn = connection_for(state.engine, tenant)
    if conn is None or conn.provider != Provider.XERO.value or conn.status != ConnectionStatus.CONNECTED.value \
            or not conn.realm_id or conn.connected_at is None:
        return PollResult("not-connected")
    org = conn.realm_id
    with holding(state.redis, org) as lock:
        if lock is None:
            return PollResult("busy")
        since = cursors.load_time(state.engine, tenant, STREAM) or conn.connected_at
        result = PollResult("polled")
        ledger = Ledger(state.engine, org)
        newest = since
        with closing(xero_client_for(state, org)) as xero:
            for page in xero.changed("Invoices", since - OVERLAP):
                for invoice in page:
                    if _apply(state, tenant, ledger, invoice):
                        result.applied += 1
                    else:
                        result.skipped += 1
                    newest = max(newest, _updated(invoice) or newest)
                cursors.save(state.engine, tenant, STREAM, newest)  # a page at a time: a crash re-reads one page
            _apply_notices(state, tenant, org, ledger, xero, result)
        log.info("inbound.xero_polled applied=%s skipped=%s", result.applied, result.skipped)
        return result


def _apply_notices(state: Services, tenant: str, org: str, ledger: Ledger, xero: XeroClient,
                   result: PollResult) -> None:
    """Settle the organisation's pending webhook notices, in arrival order."""
    after = 0
    while batch := inbox.pending_ids(state.engine, org, after=after):
        for notice in inbox.pending_notices(state.engine, batch):
            notice_id, entity, entity_id = int(notice[0]), str(notice[2]), str(notice[3])
            status, reason = InboxStatus.SKIPPED, "contacts made or changed in Xero are not applied yet"
            if entity == ENTITY:
                try:
                    changed = _apply(state, tenant, ledger, xero.get_invoice(entity_id))
                except NotFoundError:
                    changed = False
                    reason = "Xero no longer has this invoice"
                else:
                    reason = "nothing for the CRM to change"
                if changed:
                    status, reason = InboxStatus.APPLIED, ""
            inbox.settle(state.engine, notice_id, status, reason or None)
            if status is InboxStatus.APPLIED:
                result.applied += 1
            else:
                result.skipped += 1
        after = batch[-1]


def enqueue_xero_polls(state: Services) -> int:
    """The scheduler's job: one poll per connected Xero organisation; returns how many were queued."""
    return sum(request_xero_poll(state, conn.id) for conn in connected(state.engine, Provider.XERO.value)
               if conn.id is not None)


def _updated(invoice: Mapping[str, Any]) -> datetime | None:
    raw = invoice.get("UpdatedDateUTC")
    return parse_timestamp(raw) if isinstance(raw, str) and raw else None


def _apply(state: Services, tenant: str, ledger: Ledger, invoice: Mapping[str, Any]) -> bool:
    """Apply one changed invoice to the CRM invoice it is linked to; True if the CRM changed."""
    written = as_written(ENTITY, invoice)
    link = link_by_qbo_id(state, tenant, INVOICE, written["Id"])
    if link is None or link.origin != Origin.CRM.value:
        return False  # made in Xero: importing those is not wired yet
    if ledger.hash_for(ENTITY, written["Id"], written["SyncToken"]) == owned_hash(ENTITY, written):
        return False  # our own write coming back
    current = state.host.get_invoice(tenant, link.crm_id)
    if current is None:
        return False
    status, paid = invoice_status(invoice), amount_paid(invoice)
    if status is InvoiceStatus.SENT and current.status in (InvoiceStatus.DRAFT, InvoiceStatus.SENT):
        status = current.status  # "authorised, nothing paid" says nothing new about a sent invoice
    if status == current.status and paid == current.amount_paid:
        return False
    state.host.update_invoice_status(tenant, link.crm_id, status, paid)
    return True
