"""Backlog drain: when many invoices of one tenant wait, one job sends up to 30 creates at once.

A job for an `invoice.sent` row (first attempt) looks for other never-tried `invoice.sent` rows of
the same tenant whose customer and items are linked already, claims them with the processor's own
conditional claim (so no other worker pushes them), and sends them with its own row as ONE `/batch`
call: one request instead of 30 against QBO's 500/minute. Each answer is recorded on its own row:
a created invoice is linked (link + ledger, one transaction) and its row done; a per-item fault
fails or retries that row alone. Rows that are not ready (a new customer or item to create, a
retry, an update) stay on the single-row path, which creates what is missing.

Crash safety: every batched invoice's link is set pending before the call, so if the worker dies
after QBO answered, the rows' next attempt looks for the invoice by its CRM marker before creating.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import LockError
from sqlmodel import col, select

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.host import Invoice, InvoiceStatus, Origin
from crm_qbo_plugin.mapping.invoice import MappingError, currency_problem, invoice_body, line_keys
from crm_qbo_plugin.mapping.names import doc_number, valid_email
from crm_qbo_plugin.outbound.context import Push
from crm_qbo_plugin.outbound.customers import customers_by_email, link_new_customer
from crm_qbo_plugin.outbound.failures import PushFailed, explain
from crm_qbo_plugin.outbound.invoices import push_invoice, record_with_total
from crm_qbo_plugin.outbound.items import linked_item_ids
from crm_qbo_plugin.outbound.links import (
    CONTACT,
    INVOICE,
    PENDING,
    SYNCED,
    links_for,
    set_status,
)
from crm_qbo_plugin.outbound.processor import backoff, claim, finish
from crm_qbo_plugin.qbo import MAX_BATCH_ITEMS, BatchItem, QboError
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

BATCH_MIN = 3  # below this a batch saves too little to be worth it
CANDIDATE_SCAN = 90


@dataclass(frozen=True)
class Ready:
    row: OutboxEvent
    invoice: Invoice
    body: dict[str, Any]


def push_invoice_or_batch(push: Push) -> None:
    if push.row.attempts == 1 and _batch(push):
        return
    push_invoice(push)


def eligible(push: Push, invoice: Invoice | None) -> Invoice | None:
    """`invoice` if it is a first create that can go in a batch as is (foreign currency, voided,
    not yet sent, before the connection or the sync start date: the single path decides)."""
    if invoice is None or invoice.origin != Origin.CRM or invoice.sent_at is None:
        return None
    if invoice.status in (InvoiceStatus.VOID, InvoiceStatus.DELETED):
        return None
    cutoff, since = push.conn.connected_at, push.sync_from()
    if (cutoff is not None and invoice.sent_at < cutoff) or (since is not None and invoice.issue_date < since):
        return None
    if currency_problem(invoice.currency, push.company) is not None:
        return None
    if invoice.currency.upper() != push.company.home_currency:
        return None  # a foreign-currency customer may need creating: single path
    return invoice


def _candidates(push: Push) -> list[OutboxEvent]:
    """Never-tried `invoice.sent` rows of the tenant, oldest first (one indexed query)."""
    with session(push.state.engine) as db:
        query = select(OutboxEvent).where(
            OutboxEvent.tenant_id == push.tenant,
            OutboxEvent.status == OutboxStatus.PENDING.value,
            OutboxEvent.event_type == EventType.INVOICE_SENT.value,
            OutboxEvent.attempts == 0,
            OutboxEvent.origin == Origin.CRM.value,
            OutboxEvent.id != push.row.id,
        )
        if push.conn.connected_at is not None:
            query = query.where(col(OutboxEvent.occurred_at) >= push.conn.connected_at)
        return list(db.exec(query.order_by(col(OutboxEvent.id)).limit(CANDIDATE_SCAN)).all())


def _gather(push: Push, rows: list[OutboxEvent]) -> list[tuple[OutboxEvent, Invoice]]:
    """Up to 30 rows (the leader first) whose invoices are first creates fit for a batch. Links
    are read for all rows in one query; the host is asked only until the batch is full."""
    linked = links_for(push.state, push.tenant, INVOICE, [r.subject_id for r in rows])
    chosen: list[tuple[OutboxEvent, Invoice]] = []
    for row in rows:
        if row.subject_id in linked:
            continue
        invoice = eligible(push, push.host.get_invoice(push.tenant, row.subject_id))
        if invoice is not None:
            chosen.append((row, invoice))
        elif row is push.row:
            return []
        if len(chosen) >= MAX_BATCH_ITEMS:
            break
    return chosen


def _customers(push: Push, chosen: list[tuple[OutboxEvent, Invoice]]) -> dict[str, str]:
    """{contact id: QBO customer id} for the chosen invoices' contacts. Contacts never linked and
    with an e-mail are linked or created here, found with one e-mail query for them all (a crash
    after a create is healed by the e-mail lookup of the row's next attempt, and by the row's own
    requestid); a contact another worker is pushing right now is left to the single path."""
    contact_ids = list(dict.fromkeys(invoice.contact_id for _row, invoice in chosen))
    links = links_for(push.state, push.tenant, CONTACT, contact_ids)
    ids = {c: link.qbo_id for c, link in links.items() if link.qbo_id and link.status == SYNCED}
    new = [c for c in contact_ids if c not in links]
    if not new:
        return ids
    row_of: dict[str, OutboxEvent] = {}
    for row, invoice in chosen:
        row_of.setdefault(invoice.contact_id, row)
    locks = {c: lock for c in new if (lock := push.try_lock(CONTACT, c)) is not None}
    try:
        fresh = links_for(push.state, push.tenant, CONTACT, list(locks))  # linked while we locked
        contacts = [contact for c in locks if c not in fresh
                    if (contact := push.host.get_contact(push.tenant, c)) is not None and valid_email(contact.email)]
        if not contacts:
            return ids
        found = customers_by_email(push, contacts)
        for contact in contacts:
            member = replace(push, row=row_of[contact.id], txn_date=None, doc_number=None)
            try:
                ids[contact.id] = link_new_customer(member, contact, found)
            except (QboError, PushFailed) as exc:
                if isinstance(exc, QboError) and exc.retryable:
                    raise
                log.info("customer for a batched invoice left to the single path (%s)", type(exc).__name__)
    finally:
        for lock in locks.values():
            with suppress(LockError):
                lock.release()
    return ids


def _ready(push: Push, chosen: list[tuple[OutboxEvent, Invoice]]) -> list[Ready]:
    """Create bodies for the chosen rows whose customer and items are linked (no QBO write)."""
    customers = _customers(push, chosen)
    keys = {key: None for _row, invoice in chosen for key in line_keys(invoice.lines)}
    items = linked_item_ids(push, list(keys))
    ready: list[Ready] = []
    for row, invoice in chosen:
        customer = customers.get(invoice.contact_id)
        wanted = line_keys(invoice.lines)
        if customer is None or any(key not in items for key in wanted):
            if row is push.row:
                return []
            continue
        try:
            body = invoice_body(push.tenant, invoice, push.company, customer, {k: items[k] for k in wanted})
        except MappingError:
            if row is push.row:
                return []
            continue
        ready.append(Ready(row, invoice, body))
    return ready


def _batch(push: Push) -> bool:
    """Send the leader row with up to 29 ready rows; False when there is no batch worth sending."""
    chosen = _gather(push, [push.row, *_candidates(push)])
    if len(chosen) < BATCH_MIN:
        return False
    ready = _ready(push, chosen)
    if len(ready) < BATCH_MIN:
        return False
    leader, rest = ready[0], ready[1:]
    now = utcnow()
    claimed: list[Ready] = []
    for candidate in rest:
        assert candidate.row.id is not None
        row = claim(push.state, candidate.row.id, now)
        if row is not None:
            claimed.append(Ready(row, candidate.invoice, candidate.body))
    if len(claimed) + 1 < BATCH_MIN:
        for ready_row in claimed:  # hand them back untouched for their own jobs
            finish(push.state, ready_row.row, OutboxStatus.PENDING, None, now)
        return False
    members = [leader, *claimed]
    for member in members:
        set_status(push.state, push.tenant, INVOICE, member.invoice.id, PENDING, None)
    digest = hashlib.sha256("|".join(m.row.request_id for m in members).encode()).hexdigest()[:32]
    items = [BatchItem.create("Invoice", m.body) for m in members]
    try:
        results = push.qbo.batch(items, request_id=digest)
    except QboError as exc:
        for member in claimed:  # the sweeper picks them up again right away
            finish(push.state, member.row, OutboxStatus.PENDING, f"batch failed: {type(exc).__name__}", now)
        raise
    log.info("batched %d invoice creates for one realm", len(members))
    leader_error: QboError | None = None
    for member, result in zip(members, results, strict=True):
        if result.ok and result.entity is not None:
            record_with_total(push, INVOICE, member.invoice.id, "Invoice", result.entity, member.invoice.total)
            if member is not leader:
                finish(push.state, member.row, OutboxStatus.DONE)
            continue
        error = result.error or QboError("no answer for this invoice in the batch")
        if member is leader:
            leader_error = error
            continue
        _record_item_failure(push, member, error)
    if leader_error is not None:
        raise leader_error
    return True


def _record_item_failure(push: Push, member: Ready, error: QboError) -> None:
    if error.retryable:
        set_status(push.state, push.tenant, INVOICE, member.invoice.id, PENDING, f"waiting to retry: {error}")
        finish(push.state, member.row, OutboxStatus.PENDING, str(error), utcnow() + backoff(1))
        return
    failure = explain(error, "invoice", member.invoice.issue_date, doc_number(member.invoice.number))
    set_status(push.state, push.tenant, INVOICE, member.invoice.id, failure.status, str(failure))
    finish(push.state, member.row, OutboxStatus.FAILED, f"{type(failure).__name__}: {failure}")


__all__ = ["BATCH_MIN", "push_invoice_or_batch"]
