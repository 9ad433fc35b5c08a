"""CRM invoices → QBO invoices: created when sent, then every change pushed (sparse), voided — also
when deleted in the CRM: QuickBooks keeps the voided invoice for the audit trail. Imported invoices,
invoices QBO deleted, and invoices sent before the connection are never pushed.

Crash safety: the invoice create carries a requestid derived from the outbox row's (QBO replays
the first answer to a retry), and when an earlier attempt may have created the invoice without the
link being saved, the push first looks for it by the CRM marker in PrivateNote.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.host import Invoice, InvoiceStatus, Origin
from crm_qbo_plugin.mapping.imported_invoice import invoice_from_qbo, is_void
from crm_qbo_plugin.mapping.invoice import crm_marker, currency_problem, invoice_body
from crm_qbo_plugin.mapping.money import cents
from crm_qbo_plugin.mapping.names import doc_number
from crm_qbo_plugin.outbound.context import Push, RecordPush
from crm_qbo_plugin.outbound.customers import ensure_customer
from crm_qbo_plugin.outbound.decision import IMPORTED, Action, Decision, first_invoice_push
from crm_qbo_plugin.outbound.failures import PushFailed, explain
from crm_qbo_plugin.outbound.items import ensure_items
from crm_qbo_plugin.outbound.processor import Skip
from crm_qbo_plugin.qbo import NotFoundError, StaleObjectError, build_select, eq
from crm_qbo_plugin.qbo.jsoncodec import to_decimal
from crm_qbo_plugin.store.links import (
    CONFLICT,
    CONTACT,
    CRM_ONLY,
    DELETED,
    FAILED,
    IGNORED,
    INVOICE,
    NOT_SYNCED,
    PENDING,
    SYNCED,
    Write,
    get_link,
    mark_if_token,
    record_write,
    record_writes,
    set_status,
)
from crm_qbo_plugin.store.tables import Link

log = logging.getLogger(__name__)

VOIDED_ON_DELETE = "deleted in the CRM, so voided in QuickBooks (QuickBooks keeps it for the audit trail)"
PUSHED = "pushed"  # Link.detail key: body_digest of the last body written to QBO
LOCAL_CHANGES = {
    "edited": "changed in the CRM only: QuickBooks owns this invoice, so the CRM's edit was not sent and "
              "QuickBooks keeps its own version",
    "voided": "voided in the CRM only: QuickBooks owns this invoice and it is still open there",
    "deleted": "deleted in the CRM only: QuickBooks owns this invoice and still has it",
}


def push_invoice(push: Push) -> None:
    invoice_id = push.row.subject_id
    with push.lock(INVOICE, invoice_id):
        link = get_link(push.state, push.tenant, INVOICE, invoice_id)
        if link is not None and link.origin == Origin.QBO.value and link.qbo_id and link.status != DELETED:
            _note_local_change(push, link)
        refuse_by_link(link)
        invoice = invoice_to_push(push)
        if invoice is None:
            _delete(push, link)
            return
        sync_invoice(push, invoice, link)


def invoice_to_push(push: RecordPush) -> Invoice | None:
    """The CRM invoice the row brings to the books, or None when the push is a delete (its event
    or an invoice deleted in the CRM); Skip for one gone from the CRM or imported from the books."""
    if push.row.event_type == EventType.INVOICE_DELETED.value:
        return None
    invoice = push.host.get_invoice(push.tenant, push.row.subject_id)
    if invoice is None:
        raise Skip("the invoice is no longer in the CRM")
    if invoice.origin == Origin.QBO:
        raise Skip(IMPORTED)
    return None if invoice.status == InvoiceStatus.DELETED else invoice


def sync_invoice(push: Push, invoice: Invoice, link: Link | None) -> Link:
    """Bring QBO in line with `invoice` (create, update or void); returns the link."""
    push.txn_date, push.doc_number = invoice.issue_date, doc_number(invoice.number)
    if link is None or not link.qbo_id:
        check_eligible(push, invoice)
    if invoice.status == InvoiceStatus.VOID or push.row.event_type == EventType.INVOICE_VOIDED.value:
        if link is None or not link.qbo_id:
            reason = "voided before it reached QuickBooks"
            if link is not None:  # an earlier attempt left it "pending": say it never will be pushed
                set_status(push.state, push.tenant, INVOICE, invoice.id, IGNORED, reason)
            raise Skip(reason)
        return _void(push, invoice, link)
    problem = currency_problem(invoice.currency, push.company)
    if problem:
        raise PushFailed(problem)
    company = push.company
    foreign = invoice.currency.upper() if invoice.currency.upper() != company.home_currency else None
    customer_id = ensure_customer(push, invoice.contact_id, foreign)
    item_ids = ensure_items(push, invoice.lines)
    body = invoice_body(push.tenant, invoice, company, customer_id, item_ids)
    digest = body_digest(body)
    if link is None or not link.qbo_id:
        # Read again before creating: the customer step may have waited long, and the push lock
        # lives in Redis, which drops it when restarted, so another push may have made it meanwhile.
        link = get_link(push.state, push.tenant, INVOICE, invoice.id)
        refuse_by_link(link)
    if link is not None and link.qbo_id:
        if link.status == SYNCED and (link.detail or {}).get(PUSHED) == digest:
            # e.g. a payment taken in the CRM: the Payment carries it; the invoice body is the same
            raise Skip("nothing QuickBooks holds about the invoice changed since it was last pushed")
        answer = _update(push, invoice, link, body)
    else:
        answer = _create(push, invoice, link, body)
        recorded = record_with_total(push, INVOICE, invoice.id, "Invoice", answer, invoice.total, digest,
                                     created=True)
        if recorded.qbo_id != str(answer["Id"]):
            undo_second_copy(push, answer)
            raise Skip("another push created this invoice in QuickBooks meanwhile; the second copy was deleted")
        return recorded
    return record_with_total(push, INVOICE, invoice.id, "Invoice", answer, invoice.total, digest)


def undo_second_copy(push: Push, answer: Mapping[str, Any]) -> None:
    """Delete an invoice this push created while another push of the same invoice created it too
    (their push locks lost to a Redis restart while both waited): the copy is ours, unpaid and
    seconds old, and the link keeps the other one. Logged, as it should stay rare."""
    log.warning("outbound.second_copy_deleted qbo_id=%s", answer["Id"])
    push.qbo.delete("Invoice", str(answer["Id"]), str(answer["SyncToken"]), push.rid("undo"))


def _note_local_change(push: Push, link: Link) -> None:
    """An imported invoice changed in the CRM: never pushed, but marked "changed in the CRM only"
    while the CRM's version differs from QuickBooks' (or back to synced when it no longer does).

    Compared only while QuickBooks still has the version the CRM last received: a newer one is on
    its way and replaces the CRM's, local edit included. Always ends in Skip."""
    assert link.qbo_id is not None
    try:
        qbo = push.qbo.read("Invoice", link.qbo_id)
    except NotFoundError:
        raise Skip("deleted in QuickBooks; the CRM hears of it with the next changes") from None
    if str(qbo.get("SyncToken")) != link.sync_token:
        raise Skip(IMPORTED + "; QuickBooks' newer version is on its way to the CRM")
    change = local_change(push, push.host.get_invoice(push.tenant, link.crm_id), qbo)
    if change is not None:
        mark_if_token(push.state, push.tenant, INVOICE, link.crm_id, link.sync_token, CRM_ONLY, LOCAL_CHANGES[change],
                      {"local_change": change})
        raise Skip(LOCAL_CHANGES[change])
    if link.status == CRM_ONLY:  # changed back to what QuickBooks has
        mark_if_token(push.state, push.tenant, INVOICE, link.crm_id, link.sync_token, SYNCED, None,
                      {"local_change": None})
    raise Skip(IMPORTED)


def local_change(push: Push, invoice: Invoice | None, qbo: Mapping[str, Any]) -> str | None:
    """How the CRM's copy of an imported invoice departs from QuickBooks' (edited, voided,
    deleted), or None. Payment state is left out: CRM payments are pushed on their own."""
    if invoice is None or invoice.status == InvoiceStatus.DELETED:
        return "deleted"
    crm_void, qbo_void = invoice.status == InvoiceStatus.VOID, is_void(qbo)
    if crm_void != qbo_void:
        return "voided" if crm_void else "edited"
    if crm_void:
        return None
    customer = get_link(push.state, push.tenant, CONTACT, invoice.contact_id)
    if customer is None or customer.qbo_id != str((qbo.get("CustomerRef") or {}).get("value")):
        return "edited"
    theirs = invoice_from_qbo(qbo, invoice.id, invoice.contact_id, push.company.home_currency)

    def content(of: Invoice) -> Invoice:
        return replace(of, number=None, status=InvoiceStatus.SENT, amount_paid=Decimal(0), origin=Origin.QBO,
                       sent_at=None, updated_at=None)

    return None if content(invoice) == content(theirs) else "edited"


def refuse_by_link(link: Link | None) -> None:
    if link is None:
        return
    if link.origin == Origin.QBO.value:
        raise Skip(IMPORTED)
    if link.status == DELETED:
        raise Skip("deleted in QuickBooks (or by us after a CRM delete); it is not created again")
    if link.status == IGNORED:
        raise Skip(link.last_error or "ignored on the QuickBooks card")


MANUAL_EXPORT = "manual_export"  # Link.detail key: "Send to QuickBooks" (or Retry) asked for this one


def check_eligible(push: RecordPush, invoice: Invoice) -> None:
    """Never pushed: drafts, invoices sent before the connection, invoices before `sync_from`, and
    (with automatic export off) invoices nobody exported by hand."""
    by_hand = False
    if not push.settings.export_on_send:
        link = get_link(push.state, push.tenant, INVOICE, invoice.id)
        by_hand = bool(link is not None and (link.detail or {}).get(MANUAL_EXPORT))
    act_on(push, INVOICE, invoice.id, first_invoice_push(
        invoice, push.conn.connected_at, push.settings.sync_from,
        export_on_send=push.settings.export_on_send, exported_by_hand=by_hand))


def act_on(push: RecordPush, kind: str, crm_id: str, decision: Decision) -> None:
    """Carry out a decision that is not PUSH: an IGNORE marks the link ignored, a HOLD keeps it as
    "not synced" (each with its reason on the card), then both end the row as skipped."""
    if decision.push:
        return
    if decision.action is Action.IGNORE:
        set_status(push.state, push.tenant, kind, crm_id, IGNORED, decision.reason,
                   detail={"reason": decision.detail})
    elif decision.action is Action.HOLD:
        set_status(push.state, push.tenant, kind, crm_id, NOT_SYNCED, decision.reason,
                   detail={"reason": decision.detail})
    raise Skip(decision.reason or "")


def find_by_marker(push: Push, entity: str, customer_id: str, txn_date: str, marker: str) -> dict[str, Any] | None:
    """A transaction an earlier attempt created: same customer and date, our marker in PrivateNote."""
    rows = push.qbo.query(build_select(entity, [eq("CustomerRef", customer_id), eq("TxnDate", txn_date)]))
    for row in rows:
        if marker in str(row.get("PrivateNote") or ""):
            return row
    return None


def _create(push: Push, invoice: Invoice, link: Link | None, body: dict[str, Any]) -> dict[str, Any]:
    generation = link.generation if link is not None else 0
    earlier = push.retried or (link is not None and link.status in (PENDING, FAILED, CONFLICT))
    if earlier:
        found = find_by_marker(push, "Invoice", body["CustomerRef"]["value"], body["TxnDate"],
                               crm_marker(push.tenant, invoice.id))
        if found is not None:
            return _sparse_update(push, found["Id"], found["SyncToken"], body, "invf")
    set_status(push.state, push.tenant, INVOICE, invoice.id, PENDING, None)
    return push.qbo.create("Invoice", body, push.rid("inv", generation))


def _update(push: Push, invoice: Invoice, link: Link, body: dict[str, Any]) -> dict[str, Any]:
    assert link.qbo_id is not None
    try:
        return _sparse_update(push, link.qbo_id, link.sync_token or "0", body, "invu")
    except NotFoundError:
        set_status(push.state, push.tenant, INVOICE, invoice.id, DELETED, "deleted in QuickBooks")
        raise Skip("deleted in QuickBooks; it is not created again") from None


def _sparse_update(push: Push, qbo_id: str, sync_token: str, body: dict[str, Any], purpose: str) -> dict[str, Any]:
    """Sparse update of our fields; on 5010 re-read, reapply with the fresh SyncToken, once."""
    try:
        return push.qbo.update("Invoice", {**body, "Id": qbo_id, "SyncToken": sync_token}, push.rid(purpose))
    except StaleObjectError:
        fresh = push.qbo.read("Invoice", qbo_id)
        try:
            return push.qbo.update("Invoice", {**body, "Id": qbo_id, "SyncToken": fresh["SyncToken"]},
                                   push.rid(purpose + "2"))
        except StaleObjectError as exc:
            raise explain(exc, "invoice") from None


def _void(push: Push, invoice: Invoice, link: Link) -> Link:
    assert link.qbo_id is not None
    if (link.detail or {}).get("voided"):
        raise Skip("already voided in QuickBooks")
    try:
        answer = push.qbo.void("Invoice", link.qbo_id, link.sync_token or "0", push.rid("void"))
    except StaleObjectError:
        fresh = push.qbo.read("Invoice", link.qbo_id)
        answer = push.qbo.void("Invoice", link.qbo_id, fresh["SyncToken"], push.rid("void2"))
    return record_write(push.state, push.tenant, push.realm, INVOICE, invoice.id, "Invoice", answer,
                        detail={"voided": True})


def _delete(push: Push, link: Link | None) -> None:
    """A sent invoice deleted in the CRM is voided in QuickBooks, never deleted: a delete there is
    irreversible and accountants keep an audit trail (the voided invoice keeps its number, date
    and customer, with amounts zero)."""
    if link is None or not link.qbo_id:
        reason = "deleted in the CRM before it reached QuickBooks"
        if link is not None:  # an earlier attempt left it "pending": it never will be pushed now
            set_status(push.state, push.tenant, INVOICE, link.crm_id, DELETED, reason)
        raise Skip(reason)
    crm_id = link.crm_id
    if (link.detail or {}).get("voided"):
        set_status(push.state, push.tenant, INVOICE, crm_id, DELETED, VOIDED_ON_DELETE)
        return
    try:
        try:
            answer = push.qbo.void("Invoice", link.qbo_id, link.sync_token or "0", push.rid("delvoid"))
        except StaleObjectError:
            fresh = push.qbo.read("Invoice", link.qbo_id)
            answer = push.qbo.void("Invoice", link.qbo_id, fresh["SyncToken"], push.rid("delvoid2"))
    except NotFoundError:
        set_status(push.state, push.tenant, INVOICE, crm_id, DELETED, "deleted in the CRM; QuickBooks had deleted it already")
        return
    record_write(push.state, push.tenant, push.realm, INVOICE, crm_id, "Invoice", answer, status=DELETED,
                 error=VOIDED_ON_DELETE, detail={**(link.detail or {}), "voided": True})


def body_digest(body: Mapping[str, Any]) -> str:
    """A hash of the body the push sends, kept on the link to tell an unchanged invoice."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def record_with_total(push: Push, kind: str, crm_id: str, entity: str, answer: dict[str, Any],
                      crm_total: Decimal, pushed: str | None = None, *, created: bool = False) -> Link:
    """Record the write; a QBO total that differs from the CRM's is kept on the link, both figures."""
    write = write_with_total(crm_id, answer, crm_total, pushed, created=created)
    return record_writes(push.state, push.tenant, push.realm, kind, entity, [write])[0]


def write_with_total(crm_id: str, answer: Mapping[str, Any], crm_total: Decimal, pushed: str | None = None,
                     *, created: bool = False) -> Write:
    """The write to record for `answer`: synced, or conflict when QBO's total is not the CRM's.
    `pushed` is the `body_digest` of what was sent (lets the next push skip an unchanged body)."""
    qbo_total = cents(to_decimal(answer.get("TotalAmt", 0)))
    expected = cents(crm_total)
    detail = {PUSHED: pushed} if pushed else {}
    if qbo_total == expected:
        return Write(crm_id, answer, SYNCED, None, detail, created)
    message = (f"QuickBooks computed a total of {qbo_total} but the CRM total is {expected}; "
               "check the taxes and discounts mapped on the QuickBooks card")
    return Write(crm_id, answer, CONFLICT, message, {**detail, "crm_total": str(expected), "qbo_total": str(qbo_total)},
                 created)
