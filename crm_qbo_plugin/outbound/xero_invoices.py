"""CRM invoices → Xero ACCREC invoices: created AUTHORISED when sent (InvoiceNumber = the CRM's
number), every later change pushed over the same InvoiceID (lines keep their LineItemIDs), voided —
also when deleted in the CRM (an AUTHORISED Xero invoice can only be voided).

The same decisions as QuickBooks' (`invoices.check_eligible`, `refuse_by_link`): imported invoices,
drafts, invoices sent before the connection or the sync start date are never pushed.

Crash safety: the create carries an Idempotency-Key derived from the row's request id, so a retry
within Xero's 6 minutes replays the first answer; a retry later first looks the invoice up by its
number (the CRM's, unique per location) and adopts it when it is this contact's.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.host import Invoice, InvoiceStatus
from crm_qbo_plugin.mapping.money import cents
from crm_qbo_plugin.mapping.xero_imported_invoice import money
from crm_qbo_plugin.mapping.xero_invoice import (
    currency_problem,
    invoice_body,
    invoice_number,
    keep_line_ids,
)
from crm_qbo_plugin.mapping.xero_record import as_written
from crm_qbo_plugin.outbound.failures import PushFailed
from crm_qbo_plugin.outbound.invoices import (
    PUSHED,
    body_digest,
    check_eligible,
    invoice_to_push,
    refuse_by_link,
)
from crm_qbo_plugin.outbound.processor import Skip
from crm_qbo_plugin.outbound.xero_contacts import ensure_contact
from crm_qbo_plugin.outbound.xero_context import XeroPush
from crm_qbo_plugin.outbound.xero_items import item_codes
from crm_qbo_plugin.store.links import (
    CONFLICT,
    DELETED,
    FAILED,
    IGNORED,
    INVOICE,
    PENDING,
    SYNCED,
    Write,
    get_link,
    record_writes,
    set_status,
)
from crm_qbo_plugin.store.tables import Link
from crm_qbo_plugin.xero import NotFoundError

ENTITY = "XeroInvoice"
VOIDED_ON_DELETE = "deleted in the CRM, so voided in Xero (Xero keeps it for the audit trail)"


def push_invoice(push: XeroPush) -> None:
    invoice_id = push.row.subject_id
    with push.lock(INVOICE, invoice_id):
        link = get_link(push.state, push.tenant, INVOICE, invoice_id)
        refuse_by_link(link)
        invoice = invoice_to_push(push)
        if invoice is None:
            _delete(push, link)
            return
        sync_invoice(push, invoice, link)


def sync_invoice(push: XeroPush, invoice: Invoice, link: Link | None) -> Link:
    """Bring Xero in line with `invoice` (create, update or void); returns the link."""
    push.txn_date, push.doc_number = invoice.issue_date, invoice_number(invoice)
    if link is None or not link.qbo_id:
        check_eligible(push, invoice)
    if invoice.status == InvoiceStatus.VOID or push.row.event_type == EventType.INVOICE_VOIDED.value:
        if link is None or not link.qbo_id:
            reason = "voided before it reached Xero"
            if link is not None:
                set_status(push.state, push.tenant, INVOICE, invoice.id, IGNORED, reason)
            raise Skip(reason)
        return _void(push, invoice.id, link, VOID)
    books = push.books()
    problem = currency_problem(invoice.currency, books)
    if problem:
        raise PushFailed(problem)
    contact_id = ensure_contact(push, invoice.contact_id)
    body = invoice_body(invoice, books, contact_id, item_codes(push))
    digest = body_digest(body)
    if link is not None and link.qbo_id:
        if (link.detail or {}).get(PUSHED) == digest:
            # Xero holds this very body (a payment taken in the CRM changes none of it): no write —
            # Xero refuses any edit of an invoice with a payment allocated. A change held while
            # disconnected, or one that failed since, is in line again; a total conflict stays.
            if link.status not in (SYNCED, CONFLICT):
                set_status(push.state, push.tenant, INVOICE, invoice.id, SYNCED, None)
            raise Skip("nothing Xero holds about the invoice changed since it was last pushed")
        answer = _update(push, invoice, link, body)
    else:
        answer = _create(push, invoice, link, body)
    return record_with_total(push, invoice.id, answer, invoice.total, digest)


def _create(push: XeroPush, invoice: Invoice, link: Link | None, body: dict[str, Any]) -> Mapping[str, Any]:
    generation = link.generation if link is not None else 0
    if push.retried or (link is not None and link.status in (PENDING, FAILED, CONFLICT)):
        found = push.xero.find_invoice_by_number(body["InvoiceNumber"])
        if found is not None and (found.get("Contact") or {}).get("ContactID") == body["Contact"]["ContactID"]:
            return push.xero.save_invoice(keep_line_ids(body, push.xero.get_invoice(str(found["InvoiceID"]))),
                                          request_id=push.rid("xif", generation))
    set_status(push.state, push.tenant, INVOICE, invoice.id, PENDING, None)
    return push.xero.save_invoice(body, request_id=push.rid("xi", generation), create_only=True)


def _update(push: XeroPush, invoice: Invoice, link: Link, body: dict[str, Any]) -> Mapping[str, Any]:
    assert link.qbo_id is not None
    try:
        current = push.xero.get_invoice(link.qbo_id)
    except NotFoundError:
        set_status(push.state, push.tenant, INVOICE, invoice.id, DELETED, "deleted in Xero")
        raise Skip("deleted in Xero; it is not created again") from None
    return push.xero.save_invoice(keep_line_ids(body, current), request_id=push.rid("xiu"))


VOID, DELETE = "void", "delete"


def _void(push: XeroPush, crm_id: str, link: Link, why: str) -> Link:
    assert link.qbo_id is not None
    if (link.detail or {}).get("voided"):
        if why == DELETE:
            return set_status(push.state, push.tenant, INVOICE, crm_id, DELETED, VOIDED_ON_DELETE)
        raise Skip("already voided in Xero")
    try:
        answer = push.xero.void_invoice(link.qbo_id, request_id=push.rid("xvoid"))
    except NotFoundError:
        if why == DELETE:
            return set_status(push.state, push.tenant, INVOICE, crm_id, DELETED, "deleted in the CRM; Xero had deleted it already")
        set_status(push.state, push.tenant, INVOICE, crm_id, DELETED, "deleted in Xero")
        raise Skip("deleted in Xero; it is not voided again") from None
    detail = {**(link.detail or {}), "voided": True}
    status, error = (DELETED, VOIDED_ON_DELETE) if why == DELETE else (SYNCED, None)
    return record_writes(push.state, push.tenant, push.realm, INVOICE, ENTITY,
                         [Write(crm_id, as_written(ENTITY, answer), status, error, detail)])[0]


def _delete(push: XeroPush, link: Link | None) -> None:
    """A sent invoice deleted in the CRM is voided in Xero: an AUTHORISED invoice cannot be
    deleted there, and the voided one keeps its number, date and contact for the audit trail."""
    if link is None or not link.qbo_id:
        reason = "deleted in the CRM before it reached Xero"
        if link is not None:
            set_status(push.state, push.tenant, INVOICE, link.crm_id, DELETED, reason)
        raise Skip(reason)
    _void(push, link.crm_id, link, DELETE)


def record_with_total(push: XeroPush, crm_id: str, answer: Mapping[str, Any], crm_total: Decimal,
                      pushed: str | None = None) -> Link:
    """Record the write; a Xero total that differs from the CRM's is kept on the link, both figures."""
    return record_writes(push.state, push.tenant, push.realm, INVOICE, ENTITY,
                         [write_with_total(crm_id, answer, crm_total, pushed)])[0]


def write_with_total(crm_id: str, answer: Mapping[str, Any], crm_total: Decimal, pushed: str | None = None) -> Write:
    """The link-book write for Xero's answer: synced, or a conflict naming both totals."""
    xero_total, expected = cents(money(answer.get("Total", 0))), cents(crm_total)
    detail = {PUSHED: pushed} if pushed else {}
    if xero_total == expected:
        return Write(crm_id, as_written(ENTITY, answer), SYNCED, None, detail)
    return Write(crm_id, as_written(ENTITY, answer), CONFLICT,
                 f"Xero computed a total of {xero_total} but the CRM total is {expected}; "
                 "check the tax rates mapped on the card",
                 {**detail, "crm_total": str(expected), "qbo_total": str(xero_total)})
