"""CRM payments → Xero: a Payment against the invoice for an invoice payment; for a payment that
paid for no invoice (order form, subscription, membership, booking) a paid sales invoice —
an AUTHORISED invoice for exactly the amount, then a Payment of it (mapping/xero_payment.py says why).

Payments do not change once taken, so each is pushed once. Every write carries the row's
Idempotency-Key; a retry after Xero forgot it (6 minutes) looks first: the sale by its number, the
payment on the invoice's own list of payments by the CRM payment's marker in its Reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.host import Payment, PaymentSource
from crm_qbo_plugin.mapping.money import ZERO, cents
from crm_qbo_plugin.mapping.xero_imported_invoice import money
from crm_qbo_plugin.mapping.xero_invoice import currency_problem
from crm_qbo_plugin.mapping.xero_payment import payment_body, payment_marker, sale_invoice_body
from crm_qbo_plugin.mapping.xero_record import as_written
from crm_qbo_plugin.outbound.decision import sync_window
from crm_qbo_plugin.outbound.failures import PushFailed
from crm_qbo_plugin.outbound.invoices import MANUAL_EXPORT, act_on
from crm_qbo_plugin.outbound.payments import PAYMENT_NOT_EXPORTED, payment_kind, payment_to_push
from crm_qbo_plugin.outbound.processor import RetryLater, Skip
from crm_qbo_plugin.outbound.xero_contacts import ensure_contact
from crm_qbo_plugin.outbound.xero_context import XeroPush
from crm_qbo_plugin.outbound.xero_invoices import sync_invoice
from crm_qbo_plugin.outbound.xero_items import item_codes
from crm_qbo_plugin.store.links import (
    CONFLICT,
    DELETED,
    IGNORED,
    INVOICE,
    NOT_SYNCED,
    PAYMENT,
    PENDING,
    SALES_RECEIPT,
    SYNCED,
    get_link,
    link_by_qbo_id,
    record_write,
    set_status,
)
from crm_qbo_plugin.xero import parse_date

PAYMENT_ENTITY, SALE_ENTITY = "XeroPayment", "XeroInvoice"


def push_payment(push: XeroPush) -> None:
    kind = payment_kind(push.row)
    with push.lock(kind, push.row.subject_id):
        payment, retrying = payment_to_push(push, kind, "Xero")
        act_on(push, kind, payment.id, sync_window(payment.paid_at, payment.paid_at.date(), push.conn.connected_at,
                                                   push.settings.sync_from, "taken"))
        problem = currency_problem(payment.currency, push.books())
        if problem:
            raise PushFailed(problem)
        if payment.source == PaymentSource.INVOICE:
            _invoice_payment(push, payment, retrying)
        else:
            _sale(push, payment, retrying)


def _invoice_payment(push: XeroPush, payment: Payment, retrying: bool) -> None:
    if not payment.invoice_id:
        raise PushFailed("the payment is for an invoice but names none")
    with push.lock(INVOICE, payment.invoice_id):  # a payment changes its invoice
        invoice_link = get_link(push.state, push.tenant, INVOICE, payment.invoice_id)
        if invoice_link is None or not invoice_link.qbo_id:
            if invoice_link is not None and invoice_link.status in (IGNORED, DELETED):
                raise PushFailed(f"its invoice is not in Xero ({invoice_link.last_error or invoice_link.status}), "
                                 "so the payment cannot be applied there")
            invoice = push.host.get_invoice(push.tenant, payment.invoice_id)
            if invoice is None or invoice.sent_at is None:
                raise RetryLater("its invoice is not in Xero yet; the payment follows once the invoice is sent")
            if not push.settings.export_on_send and not ((invoice_link.detail or {}) if invoice_link else {}).get(MANUAL_EXPORT):
                set_status(push.state, push.tenant, PAYMENT, payment.id, NOT_SYNCED, PAYMENT_NOT_EXPORTED)
                raise Skip(PAYMENT_NOT_EXPORTED)
            invoice_link = sync_invoice(push, invoice, invoice_link)
            push.txn_date = payment.paid_at.date()
        assert invoice_link.qbo_id is not None
        xero_invoice = push.xero.get_invoice(invoice_link.qbo_id)
        body = payment_body(payment, invoice_link.qbo_id, push.books())
        if retrying:
            found = _earlier_payment(push, payment.id, xero_invoice, body)
            if found is not None:
                _record_payment(push, payment, found)
                return
        due = cents(money(xero_invoice.get("AmountDue", 0)))
        applied = min(cents(payment.amount), due)
        if applied <= ZERO:
            raise PushFailed("its Xero invoice has nothing left to pay; record the payment as a credit in Xero")
        set_status(push.state, push.tenant, PAYMENT, payment.id, PENDING, None)
        link = get_link(push.state, push.tenant, PAYMENT, payment.id)
        answer = push.xero.create_payment({**body, "Amount": applied},
                                          request_id=push.rid("xpay", link.generation if link else 0))
        _record_payment(push, payment, answer)


def _earlier_payment(push: XeroPush, payment_id: str, xero_invoice: Mapping[str, Any],
                     body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A payment an earlier attempt made: on the invoice, with this CRM payment's marker in its
    Reference (a bookkeeper's payment of the same amount that day is never taken for ours), not
    deleted, the same date and no more than this payment's amount (less if the invoice had less due)."""
    marker = payment_marker(payment_id)
    for listed in xero_invoice.get("Payments") or []:
        if not isinstance(listed, Mapping) or not listed.get("PaymentID") \
                or not str(listed.get("Reference") or "").endswith(marker):
            continue
        other = link_by_qbo_id(push.state, push.tenant, PAYMENT, str(listed["PaymentID"]))
        if other is not None and other.crm_id != payment_id:
            continue
        full = push.xero.get_payment(str(listed["PaymentID"]))
        if full.get("Status") != "DELETED" and _day(full.get("Date")) == body["Date"] \
                and cents(money(full.get("Amount", 0))) <= cents(Decimal(str(body["Amount"]))):
            return full
    return None


def _day(value: Any) -> str:
    try:
        return parse_date(str(value)).isoformat()
    except ValueError:
        return ""


def _record_payment(push: XeroPush, payment: Payment, answer: Mapping[str, Any]) -> None:
    paid = cents(money(answer.get("Amount", 0)))
    record_write(push.state, push.tenant, push.realm, PAYMENT, payment.id, PAYMENT_ENTITY,
                 as_written(PAYMENT_ENTITY, answer),
                 detail={} if paid == cents(payment.amount) else {"unapplied": str(cents(payment.amount) - paid)})


def _sale(push: XeroPush, payment: Payment, retrying: bool) -> None:
    books = push.books()
    contact_id = ensure_contact(push, payment.contact_id)
    body = sale_invoice_body(payment, books, contact_id, item_codes(push))
    link = get_link(push.state, push.tenant, SALES_RECEIPT, payment.id)
    generation = link.generation if link else 0
    sale = push.xero.find_invoice_by_number(body["InvoiceNumber"]) if retrying else None
    if sale is None:
        set_status(push.state, push.tenant, SALES_RECEIPT, payment.id, PENDING, None)
        sale = push.xero.save_invoice(body, request_id=push.rid("xsale", generation), create_only=True)
    if cents(money(sale.get("AmountDue", 0))) > ZERO:
        pay = payment_body(payment, str(sale["InvoiceID"]), books)
        push.xero.create_payment({**pay, "Amount": cents(money(sale["AmountDue"]))},
                                 request_id=push.rid("xsalepay", generation))
        sale = push.xero.get_invoice(str(sale["InvoiceID"]))
    total = cents(money(sale.get("Total", 0)))
    ok = total == cents(payment.amount)
    record_write(push.state, push.tenant, push.realm, SALES_RECEIPT, payment.id, SALE_ENTITY,
                 as_written(SALE_ENTITY, sale), status=SYNCED if ok else CONFLICT,
                 error=None if ok else f"Xero computed a total of {total} but the CRM took {cents(payment.amount)}",
                 detail={} if ok else {"crm_total": str(cents(payment.amount)), "qbo_total": str(total)})
