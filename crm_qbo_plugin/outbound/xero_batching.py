"""Backlog drain for a Xero organisation: up to 50 first sends of invoices in ONE `PUT Invoices`.

The batch leader is batching.py's (`lead_batch`: the claim of waiting rows, the hand-back of unfit
ones, the invoices' push locks, the cancelled jobs); this module brings what is Xero's through its
`BatchPlan`: which row may lead, the members' contacts (the new ones matched with one lookup and
created in one array, with those of the invoices waiting next: `xero_contacts.ensure_contacts`) and
bodies, and the one array write. It goes with ``summarizeErrors=false``, so Xero answers each
element on its own: a created invoice is linked (its total checked) and its row done; a refused
one fails on its own row and link with Xero's words, exactly as a single push would, while the
rest land.

Crash safety: every member's link is set pending first and the request carries an
Idempotency-Key made from the members' request ids, so a retry within Xero's 6 minutes replays
its answer; later, each row's own retry looks its invoice up by number before creating it.
"""

from __future__ import annotations

import logging

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.host import Invoice
from crm_qbo_plugin.mapping.xero_invoice import (
    MappingError,
    currency_problem,
    invoice_body,
    invoice_number,
)
from crm_qbo_plugin.outbound.batching import (
    BatchPlan,
    Ready,
    Unfit,
    choose,
    contacts_ahead,
    finish_many,
    lead_batch,
    leader_invoice,
    request_id_of,
)
from crm_qbo_plugin.outbound.decision import batchable
from crm_qbo_plugin.outbound.invoices import body_digest
from crm_qbo_plugin.outbound.processor import settle_failure
from crm_qbo_plugin.outbound.tracking import show_failure
from crm_qbo_plugin.outbound.xero_contacts import ensure_contacts
from crm_qbo_plugin.outbound.xero_context import XeroPush
from crm_qbo_plugin.outbound.xero_invoices import ENTITY, push_invoice, write_with_total
from crm_qbo_plugin.outbound.xero_items import item_codes
from crm_qbo_plugin.store.links import (
    CONTACT,
    INVOICE,
    PENDING,
    links_for,
    record_writes,
    set_statuses,
)
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow
from crm_qbo_plugin.xero import (
    MAX_ELEMENTS,
    ValidationError,
)

log = logging.getLogger(__name__)


def push_invoice_or_batch(push: XeroPush) -> None:
    """A first send leads a batch when a backlog waits; everything else takes the single path."""
    if push.row.event_type == EventType.INVOICE_SENT.value and lead_batch(push, XERO_BATCH):
        return
    push_invoice(push)


def _eligible(push: XeroPush, invoice: Invoice | None) -> Invoice | None:
    """`invoice` if it is a plain first create (anything else the single path decides and words)."""
    if invoice is None or not push.settings.revenue_account_id:
        return None
    books = push.books()
    fits = batchable(invoice, push.conn.connected_at, push.settings.sync_from, books.base_currency.upper(),
                     currency_problem(invoice.currency, books), push.settings.export_on_send)
    return invoice if fits else None


def _leader(push: XeroPush) -> Invoice | None:
    """A leader whose contact is linked or in the CRM (Xero matches by e-mail, else by name)."""
    return leader_invoice(push, _eligible, lambda _contact: True)


def _prepare(push: XeroPush, leader: Invoice, members: list[OutboxEvent]) -> tuple[list[Ready], list[Unfit]]:
    """Create bodies for the rows whose contact is (made) linked; the others with why."""
    chosen, unfit = choose(push, leader, members, _eligible)
    if not chosen:
        return [], unfit
    contacts, trouble = _contacts(push, chosen)
    books, codes = push.books(), item_codes(push)
    ready: list[Ready] = []
    for row, invoice in chosen:
        reason = trouble.get(invoice.contact_id)
        if reason is None:
            try:
                ready.append(Ready(row, invoice, invoice_body(invoice, books, contacts[invoice.contact_id], codes)))
                continue
            except MappingError as exc:
                reason = str(exc)
        unfit.append((row, reason))
    return ready, unfit


def _contacts(push: XeroPush, chosen: list[tuple[OutboxEvent, Invoice]]) -> tuple[dict[str, str], dict[str, str]]:
    """({contact id: Xero ContactID}, {contact id: why its invoices go the single path}): the new
    ones (and those of the invoices waiting next) matched with one lookup and created in one
    array, each of the batch's keyed to the first row naming it."""
    first_rows: dict[str, OutboxEvent] = {}
    for row, invoice in chosen:
        first_rows.setdefault(invoice.contact_id, row)

    def ahead(skip: set[str], want: int) -> list[str]:
        return contacts_ahead(push, skip, want, lambda contact_ids: _unlinked(push, contact_ids),
                              lambda invoice: _eligible(push, invoice) is not None)

    return ensure_contacts(push, first_rows, ahead)


def _unlinked(push: XeroPush, contact_ids: list[str]) -> list[str]:
    linked = links_for(push.state, push.tenant, CONTACT, contact_ids)
    return [c for c in contact_ids if c not in linked]


def _send(push: XeroPush, members: list[Ready]) -> None:
    """One array write for the members (the leader first), each answer recorded on its row."""
    leader, claimed = members[0], members[1:]
    push.txn_date, push.doc_number = leader.invoice.issue_date, invoice_number(leader.invoice)
    now = utcnow()
    set_statuses(push.state, push.tenant, INVOICE, [m.invoice.id for m in members], PENDING)
    try:
        answers = push.xero.save_invoices([m.body for m in members], request_id=request_id_of(members), create_only=True)
    except Exception as exc:
        # Xero may have made them: each row's next attempt looks its invoice up by number first.
        finish_many(push, [m.row for m in claimed], OutboxStatus.PENDING, f"batch failed: {type(exc).__name__}", now)
        raise
    log.info("outbound.xero_batch_sent invoices=%d", len(members))
    created = [(m, a.element) for m, a in zip(members, answers, strict=True) if a.ok]
    refused = [(m, ValidationError(a.errors, elements=[a.element])) for m, a in zip(members, answers, strict=True)
               if not a.ok]
    record_writes(push.state, push.tenant, push.realm, INVOICE, ENTITY, [
        write_with_total(m.invoice.id, element, m.invoice.total, body_digest(m.body)) for m, element in created])
    finish_many(push, [m.row for m, _element in created if m is not leader], OutboxStatus.DONE)
    leader_error = None
    for member, error in refused:
        if member is leader:
            leader_error = error
            continue
        shown = show_failure(push.state, push.tenant, INVOICE, member.invoice.id, error, "invoice",
                             member.invoice.issue_date, invoice_number(member.invoice))
        settle_failure(push.state, member.row, push.conn, shown, utcnow())
    if leader_error is not None:
        raise leader_error


XERO_BATCH: BatchPlan[XeroPush] = BatchPlan(MAX_ELEMENTS, _leader, _prepare, _send)

__all__ = ["XERO_BATCH", "push_invoice_or_batch"]
