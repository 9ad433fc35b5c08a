"""QBO Invoice → CRM Invoice, and an invoice's payment state (pure; no I/O; Decimal money).

The state comes from QBO's own figures: a void (QBO zeroes the amounts and writes "Voided" into
PrivateNote) is VOID, never paid; a zero-total invoice is never "paid"; otherwise Balance against
TotalAmt says paid, partially paid or open.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.host import Invoice, InvoiceStatus, LineItem, Origin
from crm_qbo_plugin.qbo.timestamps import parse_date, parse_timestamp

ZERO = Decimal("0")


def money(value: Any) -> Decimal:
    """A QBO amount as Decimal (the client already decodes numbers as Decimal; ints pass too)."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, float):
        raise TypeError("QBO amounts must be decoded as Decimal, not float")
    return Decimal(str(value))


def _ref(data: Mapping[str, Any], name: str, field: str = "value") -> str | None:
    ref = data.get(name)
    value = ref.get(field) if isinstance(ref, Mapping) else None
    return str(value) if value not in (None, "") else None


def is_void(invoice: Mapping[str, Any]) -> bool:
    note = invoice.get("PrivateNote")
    voided_note = isinstance(note, str) and note.startswith("Voided")
    return invoice.get("TxnStatus") == "Voided" or (voided_note and money(invoice.get("TotalAmt")) == ZERO)


def amount_paid(invoice: Mapping[str, Any]) -> Decimal:
    """What has been paid: TotalAmt − Balance (never negative; zero for a void)."""
    if is_void(invoice):
        return ZERO
    paid = money(invoice.get("TotalAmt")) - money(invoice.get("Balance"))
    return paid if paid > ZERO else ZERO


def invoice_status(invoice: Mapping[str, Any]) -> InvoiceStatus:
    if is_void(invoice):
        return InvoiceStatus.VOID
    total, balance = money(invoice.get("TotalAmt")), money(invoice.get("Balance"))
    if total <= ZERO:
        return InvoiceStatus.SENT  # nothing was due, so nothing was paid
    if balance <= ZERO:
        return InvoiceStatus.PAID
    if balance < total:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.SENT


def _lines(invoice: Mapping[str, Any]) -> tuple[tuple[LineItem, ...], Decimal]:
    items: list[LineItem] = []
    discount = ZERO
    for line in invoice.get("Line") or []:
        if not isinstance(line, Mapping):
            continue
        kind = line.get("DetailType")
        if kind == "DiscountLineDetail":
            discount += money(line.get("Amount"))
        elif kind == "SalesItemLineDetail":
            detail = line.get("SalesItemLineDetail") or {}
            amount = money(line.get("Amount"))
            qty = money(detail.get("Qty")) if detail.get("Qty") not in (None, "") else Decimal("1")
            price = money(detail.get("UnitPrice")) if detail.get("UnitPrice") not in (None, "") else amount
            name = _ref(detail, "ItemRef", "name") or str(line.get("Description") or "Item")
            items.append(LineItem(name=name, quantity=qty, unit_price=price,
                                  description=str(line.get("Description") or "")))
    return tuple(items), discount


def _date(value: Any) -> date | None:
    return parse_date(value) if isinstance(value, str) and value.strip() else None


def invoice_from_qbo(invoice: Mapping[str, Any], invoice_id: str, contact_id: str, home_currency: str) -> Invoice:
    """The CRM invoice for a QBO invoice body (origin QBO). ``invoice_id`` is the CRM id to write to."""
    lines, discount = _lines(invoice)
    issue = _date(invoice.get("TxnDate"))
    if issue is None:
        raise ValueError("the QBO invoice has no TxnDate")
    meta = invoice.get("MetaData") or {}
    updated = meta.get("LastUpdatedTime") if isinstance(meta, Mapping) else None
    delivery = invoice.get("DeliveryInfo") or {}
    sent = delivery.get("DeliveryTime") if isinstance(delivery, Mapping) else None
    email = invoice.get("BillEmail")
    return Invoice(
        id=invoice_id,
        contact_id=contact_id,
        number=str(invoice["DocNumber"]) if invoice.get("DocNumber") else None,
        status=invoice_status(invoice),
        currency=_ref(invoice, "CurrencyRef") or home_currency,
        issue_date=issue,
        due_date=_date(invoice.get("DueDate")),
        lines=lines,
        total=money(invoice.get("TotalAmt")),
        amount_paid=amount_paid(invoice),
        billing_email=(email.get("Address") or None) if isinstance(email, Mapping) else None,
        discount_total=discount,
        origin=Origin.QBO,
        sent_at=parse_timestamp(sent) if isinstance(sent, str) and sent else None,
        updated_at=parse_timestamp(updated) if isinstance(updated, str) and updated else None,
    )


def total_difference(crm_total: Decimal, invoice: Mapping[str, Any]) -> Decimal:
    """QBO's total minus the CRM's (e.g. 0.01 when QBO rounds tax differently)."""
    return money(invoice.get("TotalAmt")) - crm_total
