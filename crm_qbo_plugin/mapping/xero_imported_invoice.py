"""Xero Invoice → CRM Invoice and its payment state, for inbound (pure; no I/O; Decimal money).

The state comes from Xero's own figures: VOIDED → VOID and DELETED → DELETED (never paid), DRAFT
and SUBMITTED → DRAFT, PAID → PAID, AUTHORISED with something paid → PARTIALLY_PAID, else SENT.
Lines keep Xero's quantity and unit amount; a discount is the gap between ``round(Q × U, 2)`` and
the LineAmount. Under Inclusive the unit amounts include tax, so the CRM's lines are gross and its
total is Xero's ``Total`` either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.host import Invoice, InvoiceStatus, LineItem, Origin
from crm_qbo_plugin.mapping.money import ZERO, cents
from crm_qbo_plugin.mapping.names import GENERIC_ITEM_NAME, description
from crm_qbo_plugin.xero.timestamps import parse_date, parse_timestamp

ACCREC = "ACCREC"


def money(value: Any) -> Decimal:
    """A Xero amount as Decimal (the client decodes fractions as Decimal; ints pass too)."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, float):
        raise TypeError("Xero amounts must be decoded as Decimal, not float")
    return Decimal(str(value))


def invoice_status(invoice: Mapping[str, Any]) -> InvoiceStatus:
    status = invoice.get("Status")
    if status == "VOIDED":
        return InvoiceStatus.VOID
    if status == "DELETED":
        return InvoiceStatus.DELETED
    if status in ("DRAFT", "SUBMITTED"):
        return InvoiceStatus.DRAFT
    if status == "PAID":
        return InvoiceStatus.PAID
    return InvoiceStatus.PARTIALLY_PAID if money(invoice.get("AmountPaid")) > ZERO \
        else InvoiceStatus.SENT


def amount_paid(invoice: Mapping[str, Any]) -> Decimal:
    if invoice.get("Status") in ("VOIDED", "DELETED"):
        return ZERO
    paid = money(invoice.get("AmountPaid"))
    return paid if paid > ZERO else ZERO


def _line(raw: Mapping[str, Any]) -> LineItem:
    quantity = money(raw.get("Quantity")) or Decimal(1)
    unit = money(raw.get("UnitAmount"))
    amount = money(raw.get("LineAmount")) if raw.get("LineAmount") not in (None, "") \
        else cents(quantity * unit)
    text = description(str(raw.get("Description") or ""))
    code = raw.get("ItemCode")
    return LineItem(name=text.split("\n", 1)[0][:100] or (str(code) if code else GENERIC_ITEM_NAME),
                    quantity=quantity, unit_price=unit, description=text,
                    sku=str(code) if code else None,
                    discount=max(ZERO, cents(quantity * unit) - amount))


def invoice_from_xero(xero_invoice: Mapping[str, Any], invoice_id: str, contact_id: str
                      ) -> Invoice:
    """The CRM invoice for a Xero ACCREC invoice read by id (so it has its lines)."""
    if xero_invoice.get("Type") != ACCREC:
        raise ValueError("only sales invoices (ACCREC) map to CRM invoices")
    raw_lines = xero_invoice.get("LineItems")
    lines = tuple(_line(r) for r in raw_lines if isinstance(r, Mapping)) \
        if isinstance(raw_lines, list) else ()
    due = xero_invoice.get("DueDate")
    updated = xero_invoice.get("UpdatedDateUTC")
    return Invoice(
        id=invoice_id,
        contact_id=contact_id,
        number=str(xero_invoice.get("InvoiceNumber") or "") or None,
        status=invoice_status(xero_invoice),
        currency=str(xero_invoice.get("CurrencyCode") or "").upper(),
        issue_date=parse_date(str(xero_invoice["Date"])),
        due_date=parse_date(str(due)) if due else None,
        lines=lines,
        total=money(xero_invoice.get("Total")),
        amount_paid=amount_paid(xero_invoice),
        origin=Origin.QBO,
        updated_at=parse_timestamp(updated) if isinstance(updated, str) and updated else None,
    )
