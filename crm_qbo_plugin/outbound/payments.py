"""CRM payments → QBO: a SalesReceipt for order forms, subscriptions (every renewal), membership
checkouts and calendar bookings; a Payment linked to its invoice for invoice payments.

Payments do not change once taken, so a payment is pushed once; a retry after a crash finds the
earlier attempt's record by requestid replay, and by the CRM marker in PrivateNote.
"""

from __future__ import annotations

from typing import Any

from crm_qbo_plugin.host import Origin, Payment, PaymentSource
from crm_qbo_plugin.mapping.invoice import crm_marker, currency_problem
from crm_qbo_plugin.mapping.money import ZERO, cents
from crm_qbo_plugin.mapping.payment import payment_body
from crm_qbo_plugin.mapping.sales_receipt import sales_receipt_body
from crm_qbo_plugin.outbound.context import Push, RecordPush
from crm_qbo_plugin.outbound.customers import ensure_customer
from crm_qbo_plugin.outbound.decision import ECHO_REASON, sync_window
from crm_qbo_plugin.outbound.failures import PushFailed
from crm_qbo_plugin.outbound.invoices import (
    MANUAL_EXPORT,
    act_on,
    find_by_marker,
    record_with_total,
    sync_invoice,
)
from crm_qbo_plugin.outbound.items import ensure_items
from crm_qbo_plugin.outbound.processor import RetryLater, Skip
from crm_qbo_plugin.qbo.jsoncodec import to_decimal
from crm_qbo_plugin.store.links import (
    CONFLICT,
    DELETED,
    FAILED,
    IGNORED,
    INVOICE,
    NOT_SYNCED,
    PAYMENT,
    PENDING,
    SALES_RECEIPT,
    SYNCED,
    get_link,
    record_write,
    set_status,
)
from crm_qbo_plugin.store.tables import OutboxEvent


def payment_kind(row: OutboxEvent) -> str:
    return PAYMENT if row.source == PaymentSource.INVOICE.value else SALES_RECEIPT


def payment_to_push(push: RecordPush, kind: str, books: str) -> tuple[Payment, bool]:
    """The CRM payment the row sends to `books` ("QuickBooks", "Xero") and whether this is a retry;
    Skip for one gone from the CRM, come from the books, ignored, deleted there or there already.
    The caller holds the payment's push lock."""
    payment = push.host.get_payment(push.tenant, push.row.subject_id)
    if payment is None:
        raise Skip("the payment is no longer in the CRM")
    if payment.origin == Origin.QBO:
        raise Skip(ECHO_REASON)
    link = get_link(push.state, push.tenant, kind, payment.id)
    if link is not None:
        if link.status == IGNORED:
            raise Skip(link.last_error or f"ignored on the {books} card")
        if link.status == DELETED:
            raise Skip(f"deleted in {books}; it is not created again")
        if link.qbo_id and link.status in (SYNCED, CONFLICT):
            raise Skip(f"already in {books}")
    push.txn_date = payment.paid_at.date()
    return payment, push.retried or (link is not None and link.status in (PENDING, FAILED))


def push_payment(push: Push) -> None:
    kind = payment_kind(push.row)
    with push.lock(kind, push.row.subject_id):
        payment, retrying = payment_to_push(push, kind, "QuickBooks")
        _check_eligible(push, payment, kind)
        problem = currency_problem(payment.currency, push.company)
        if problem:
            raise PushFailed(problem)
        if kind == SALES_RECEIPT:
            _sales_receipt(push, payment, retrying)
        else:
            _invoice_payment(push, payment, retrying)


PAYMENT_NOT_EXPORTED = ("not synced: its invoice is not in QuickBooks (\"Export invoices automatically when sent\" "
                        "is off); send the invoice with Send to QuickBooks, then Retry this payment")


def _check_eligible(push: Push, payment: Payment, kind: str) -> None:
    act_on(push, kind, payment.id, sync_window(payment.paid_at, payment.paid_at.date(), push.conn.connected_at,
                                               push.settings.sync_from, "taken"))


def _foreign(push: Push, currency: str) -> str | None:
    return currency.upper() if currency.upper() != push.company.home_currency else None


def _sales_receipt(push: Push, payment: Payment, retrying: bool) -> None:
    customer_id = ensure_customer(push, payment.contact_id, _foreign(push, payment.currency))
    item_ids = ensure_items(push, payment.lines)
    body = sales_receipt_body(push.tenant, payment, push.company, customer_id, item_ids)
    answer = _create_once(push, "SalesReceipt", body, crm_marker(push.tenant, payment.id), retrying,
                          SALES_RECEIPT, payment.id, "sr")
    record_with_total(push, SALES_RECEIPT, payment.id, "SalesReceipt", answer, payment.amount)


def _invoice_payment(push: Push, payment: Payment, retrying: bool) -> None:
    if not payment.invoice_id:
        raise PushFailed("the payment is for an invoice but names none")
    # A payment moves its invoice's SyncToken: it holds the invoice's push lock, so an update of the
    # same invoice never races it into two 5010s and a false conflict.
    with push.lock(INVOICE, payment.invoice_id):
        _invoice_payment_locked(push, payment, retrying)


def _invoice_payment_locked(push: Push, payment: Payment, retrying: bool) -> None:
    assert payment.invoice_id is not None
    invoice_link = get_link(push.state, push.tenant, INVOICE, payment.invoice_id)
    if invoice_link is None or not invoice_link.qbo_id:
        if invoice_link is not None and invoice_link.status in (IGNORED, DELETED):
            raise PushFailed(f"its invoice is not in QuickBooks ({invoice_link.last_error or invoice_link.status}), "
                             "so the payment cannot be applied there")
        invoice = push.host.get_invoice(push.tenant, payment.invoice_id)
        if invoice is None or invoice.sent_at is None:
            raise RetryLater("its invoice is not in QuickBooks yet; the payment follows once the invoice is sent")
        if not push.settings.export_on_send and not ((invoice_link.detail or {}) if invoice_link else {}).get(MANUAL_EXPORT):
            # kept, with the way out, rather than exporting an invoice the user chose to export by hand
            set_status(push.state, push.tenant, PAYMENT, payment.id, NOT_SYNCED, PAYMENT_NOT_EXPORTED)
            raise Skip(PAYMENT_NOT_EXPORTED)
        invoice_link = sync_invoice(push, invoice, get_link(push.state, push.tenant, INVOICE, invoice.id))  # first
        push.txn_date = payment.paid_at.date()
    assert invoice_link.qbo_id is not None
    qbo_invoice = push.qbo.read("Invoice", invoice_link.qbo_id)
    customer_id = str(qbo_invoice["CustomerRef"]["value"])
    body = payment_body(push.tenant, payment, push.company, customer_id, invoice_link.qbo_id)
    open_balance = cents(to_decimal(qbo_invoice.get("Balance", 0)))
    applied = min(cents(payment.amount), open_balance)
    # what the invoice cannot take stays on the customer as an unapplied credit
    body["Line"] = [] if applied <= ZERO else [{**body["Line"][0], "Amount": applied}]
    answer = _create_once(push, "Payment", body, crm_marker(push.tenant, payment.id), retrying,
                          PAYMENT, payment.id, "pay")
    record_write(push.state, push.tenant, push.realm, PAYMENT, payment.id, "Payment", answer,
                 detail={} if applied == cents(payment.amount) else
                 {"unapplied": str(cents(payment.amount) - applied)})


def _create_once(push: Push, entity: str, body: dict[str, Any], marker: str, retrying: bool,
                 kind: str, crm_id: str, purpose: str) -> dict[str, Any]:
    if retrying:
        found = find_by_marker(push, entity, body["CustomerRef"]["value"], body["TxnDate"], marker)
        if found is not None:
            return found
    set_status(push.state, push.tenant, kind, crm_id, PENDING, None)
    link = get_link(push.state, push.tenant, kind, crm_id)
    return push.qbo.create(entity, body, push.rid(purpose, link.generation if link else 0))


__all__ = ["payment_kind", "push_payment"]
