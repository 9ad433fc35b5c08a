"""Payments by source: order forms, subscriptions, memberships, calendar bookings, and payments
against an invoice (which also move the invoice's amount paid and status)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from crm_qbo_plugin import EventType, HostEvent, LineItem, Origin, Payment, PaymentSource
from reference_crm.db import utcnow
from reference_crm.errors import Invalid, NotFound
from reference_crm.invoices import apply_payment, get_invoice_row
from reference_crm.models import ContactRow, Location, PaymentRow, new_id
from reference_crm.money import cents


def payment_event(row: PaymentRow) -> HostEvent:
    return HostEvent(type=EventType.PAYMENT_RECEIVED, subject_id=row.id, key=f"payment:{row.id}",
                     origin=Origin(row.origin), source=PaymentSource(row.source), occurred_at=row.created_at)


def get_payment_row(db: Session, location_id: str, payment_id: str) -> PaymentRow:
    row = db.get(PaymentRow, payment_id)
    if row is None or row.location_id != location_id:
        raise NotFound(f"payment {payment_id} not found")
    return row


def list_payments(db: Session, location_id: str, invoice_id: str | None = None) -> list[PaymentRow]:
    query = select(PaymentRow).where(PaymentRow.location_id == location_id)
    if invoice_id:
        query = query.where(PaymentRow.invoice_id == invoice_id)
    return list(db.exec(query.order_by(col(PaymentRow.paid_at).desc(), col(PaymentRow.id))))


def record_payment(db: Session, location_id: str, data: Mapping[str, Any]) -> tuple[PaymentRow, list[HostEvent]]:
    """`data`: source, amount, and contact_id or invoice_id (source "invoice" needs an invoice_id and
    takes the invoice's contact and currency), optional currency, paid_at, reference, lines."""
    source = PaymentSource(data["source"])
    amount: Decimal = data["amount"]
    invoice_id = data.get("invoice_id")
    contact_id = data.get("contact_id")
    events: list[HostEvent] = []
    if source is PaymentSource.INVOICE:
        if not invoice_id:
            raise Invalid({"invoice_id": ["required when the source is invoice"]})
        try:
            invoice = get_invoice_row(db, location_id, invoice_id)
        except NotFound:
            raise Invalid({"invoice_id": [f"no invoice {invoice_id} in this location"]}) from None
        if contact_id and contact_id != invoice.contact_id:
            raise Invalid({"contact_id": ["must be the invoice's contact (or left out)"]})
        contact_id = invoice.contact_id
        currency = (data.get("currency") or invoice.currency).upper()
        events.append(apply_payment(db, invoice, amount, currency))
    else:
        if invoice_id:
            raise Invalid({"invoice_id": ["only payments with source invoice name an invoice"]})
        if not contact_id:
            raise Invalid({"contact_id": ["required"]})
        contact = db.get(ContactRow, contact_id)
        if contact is None or contact.location_id != location_id:
            raise Invalid({"contact_id": [f"no contact {contact_id} in this location"]})
        location = db.get(Location, location_id)
        assert location is not None
        currency = (data.get("currency") or location.currency).upper()
    lines = list(data.get("lines") or ())
    if lines and sum((cents(line["quantity"] * line["unit_price"]) for line in lines), Decimal("0")) != amount:
        raise Invalid({"amount": ["must equal the sum of the lines (quantity × unit price, to the cent)"]})
    now = utcnow()
    row = PaymentRow(
        id=new_id("pay"), location_id=location_id, contact_id=contact_id, source=source.value, amount=amount,
        currency=currency, paid_at=data.get("paid_at") or now, invoice_id=invoice_id if source is PaymentSource.INVOICE else None,
        reference=data.get("reference") or "", created_at=now,
        lines=[{"name": line["name"], "sku": line.get("sku") or None, "quantity": str(line["quantity"]),
                "unit_price": str(line["unit_price"])} for line in lines],
    )
    db.add(row)
    db.flush()
    # The payment first, then the invoice change it caused.
    return row, [payment_event(row), *events]


def to_plugin_payment(row: PaymentRow) -> Payment:
    return Payment(
        id=row.id, contact_id=row.contact_id, source=PaymentSource(row.source), amount=row.amount,
        currency=row.currency, paid_at=row.paid_at, invoice_id=row.invoice_id, reference=row.reference,
        origin=Origin(row.origin),
        lines=tuple(LineItem(name=line["name"], quantity=Decimal(line["quantity"]),
                             unit_price=Decimal(line["unit_price"]), sku=line.get("sku")) for line in row.lines),
    )
