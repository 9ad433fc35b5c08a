"""Invoices: draft → send → (paid | void | deleted), with Decimal totals, and the host events that
tell the plugin about each change once the invoice has been sent.

A draft is the CRM's business alone: QuickBooks hears of an invoice when it is sent, and of every
change after that. Each change bumps the invoice's version, which names its event
(``invoice:<id>:v<version>``), so a retried request never publishes a change twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from crm_qbo_plugin import EventType, HostEvent, Invoice, InvoiceStatus, LineItem, Origin, Tax
from reference_crm.db import utcnow
from reference_crm.errors import Conflict, Invalid, NotFound
from reference_crm.models import ContactRow, InvoiceLineRow, InvoiceRow, Location, TaxRate, new_id
from reference_crm.money import LineAmounts, cents, invoice_totals

ZERO = Decimal("0.00")
IN_CHUNK = 500  # ids per IN (...) query
OPEN = {InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID}
EVENT_FOR_STATUS = {InvoiceStatus.VOID: EventType.INVOICE_VOIDED, InvoiceStatus.DELETED: EventType.INVOICE_DELETED}


def invoice_event(row: InvoiceRow, kind: EventType, origin: Origin) -> HostEvent:
    return HostEvent(type=kind, subject_id=row.id, key=f"invoice:{row.id}:v{row.version}", origin=origin,
                     occurred_at=row.updated_at)


def status_for(total: Decimal, amount_paid: Decimal) -> InvoiceStatus:
    """Status of a sent invoice from its money: a zero-total invoice is never "paid"."""
    if amount_paid <= 0 or total <= 0:
        return InvoiceStatus.SENT
    return InvoiceStatus.PAID if amount_paid >= total else InvoiceStatus.PARTIALLY_PAID


def get_invoice_row(db: Session, location_id: str, invoice_id: str, *, include_deleted: bool = False) -> InvoiceRow:
    row = db.get(InvoiceRow, invoice_id)
    if row is None or row.location_id != location_id or (row.status == InvoiceStatus.DELETED and not include_deleted):
        raise NotFound(f"invoice {invoice_id} not found")
    return row


def list_invoices(db: Session, location_id: str, contact_id: str | None = None) -> list[InvoiceRow]:
    query = select(InvoiceRow).where(InvoiceRow.location_id == location_id, InvoiceRow.status != InvoiceStatus.DELETED.value)
    if contact_id:
        query = query.where(InvoiceRow.contact_id == contact_id)
    return list(db.exec(query.order_by(col(InvoiceRow.created_at).desc(), col(InvoiceRow.id))))


def invoice_lines(db: Session, invoice_id: str) -> list[InvoiceLineRow]:
    query = select(InvoiceLineRow).where(InvoiceLineRow.invoice_id == invoice_id).order_by(col(InvoiceLineRow.position))
    return list(db.exec(query))


def create_invoice(db: Session, location_id: str, data: Mapping[str, Any]) -> InvoiceRow:
    """A new draft. `data`: contact_id, lines, and optional issue_date, due_date, currency, billing_email."""
    _check_contact(db, location_id, data["contact_id"])
    location = db.get(Location, location_id)
    assert location is not None
    now = utcnow()
    row = InvoiceRow(
        id=new_id("inv"), location_id=location_id, contact_id=data["contact_id"],
        number=f"INV-{take_invoice_number(db, location_id)}", status=InvoiceStatus.DRAFT.value,
        currency=(data.get("currency") or location.currency).upper(),
        issue_date=data.get("issue_date") or now.date(), due_date=data.get("due_date"),
        billing_email=data.get("billing_email") or None, created_at=now, updated_at=now,
    )
    _check_dates(row.issue_date, row.due_date)
    db.add(row)
    db.flush()
    _replace_lines(db, row, data["lines"])
    return row


def take_invoice_number(db: Session, location_id: str) -> int:
    """The location's next invoice number, taken atomically: one UPDATE … RETURNING increments the
    counter in the database, which holds the row's write lock (SQLite: the database's) until the
    transaction ends — so requests at the same moment never read the same number (reading it and
    writing it back +1 did, on SQLite and on PostgreSQL alike)."""
    table = Location.__table__  # type: ignore[attr-defined]
    taken = db.execute(
        sa.update(table).where(table.c.id == location_id)
        .values(next_invoice_number=table.c.next_invoice_number + 1)
        .returning(table.c.next_invoice_number)
    ).scalar_one()
    location = db.identity_map.get(db.identity_key(Location, location_id))
    if location is not None:
        db.expire(location, ["next_invoice_number"])  # the session's copy is stale now
    return int(taken) - 1


def update_invoice(db: Session, row: InvoiceRow, data: Mapping[str, Any]) -> HostEvent | None:
    """Change a draft or sent invoice; a sent one publishes invoice.updated."""
    status = InvoiceStatus(row.status)
    if status in (InvoiceStatus.VOID, InvoiceStatus.DELETED):
        raise Conflict(f"a {status.value} invoice cannot be changed")
    if "contact_id" in data:
        _check_contact(db, row.location_id, data["contact_id"])
        row.contact_id = data["contact_id"]
    if "number" in data:
        row.number = _free_number(db, row, data["number"].strip())
    if data.get("issue_date"):
        row.issue_date = data["issue_date"]
    if "due_date" in data:
        row.due_date = data["due_date"]
    if "billing_email" in data:
        row.billing_email = data["billing_email"] or None
    if "currency" in data:
        if row.amount_paid > 0 and data["currency"].upper() != row.currency:
            raise Conflict("the currency of an invoice with payments cannot change")
        row.currency = data["currency"].upper()
    _check_dates(row.issue_date, row.due_date)
    if "lines" in data:
        _replace_lines(db, row, data["lines"])
    if row.total < row.amount_paid:
        raise Invalid({"lines": [f"the new total {row.total} is below the amount already paid ({row.amount_paid})"]})
    if status in OPEN:
        row.status = status_for(row.total, row.amount_paid).value
    return _bump(db, row, EventType.INVOICE_UPDATED if status in OPEN else None, Origin.CRM)


def send_invoice(db: Session, row: InvoiceRow) -> HostEvent:
    if row.status != InvoiceStatus.DRAFT:
        raise Conflict(f"only a draft can be sent; this invoice is {row.status}")
    row.status = status_for(row.total, row.amount_paid).value
    row.sent_at = utcnow()
    event = _bump(db, row, EventType.INVOICE_SENT, Origin.CRM)
    assert event is not None
    return event


def void_invoice(db: Session, row: InvoiceRow) -> HostEvent:
    if row.status == InvoiceStatus.DRAFT:
        raise Conflict("a draft cannot be voided; delete it instead")
    if row.status not in (InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID):
        raise Conflict(f"a {row.status} invoice cannot be voided")
    if row.amount_paid > 0:
        raise Conflict("an invoice with payments cannot be voided")
    row.status = InvoiceStatus.VOID.value
    event = _bump(db, row, EventType.INVOICE_VOIDED, Origin.CRM)
    assert event is not None
    return event


def delete_invoice(db: Session, row: InvoiceRow) -> HostEvent | None:
    """Deleted invoices are kept as tombstones (the plugin still reads them); a draft publishes nothing."""
    if row.amount_paid > 0:
        raise Conflict("an invoice with payments cannot be deleted")
    was_sent = row.status != InvoiceStatus.DRAFT
    row.status = InvoiceStatus.DELETED.value
    return _bump(db, row, EventType.INVOICE_DELETED if was_sent else None, Origin.CRM)


def apply_payment(db: Session, row: InvoiceRow, amount: Decimal, currency: str) -> HostEvent:
    """Record `amount` against an open invoice (never more than its balance)."""
    if row.status not in OPEN:
        raise Conflict(f"payments apply to sent invoices; this invoice is {row.status}")
    if currency.upper() != row.currency:
        raise Invalid({"currency": [f"must be the invoice's currency, {row.currency}"]})
    balance = row.total - row.amount_paid
    if amount > balance:
        raise Invalid({"amount": [f"is more than the invoice's open balance ({balance})"]})
    row.amount_paid += amount
    row.status = status_for(row.total, row.amount_paid).value
    event = _bump(db, row, EventType.INVOICE_UPDATED, Origin.CRM)
    assert event is not None
    return event


def set_status_from_qbo(db: Session, row: InvoiceRow, status: InvoiceStatus, amount_paid: Decimal) -> HostEvent | None:
    """QuickBooks changed the invoice's payment state, or voided or deleted it."""
    if (row.status, row.amount_paid) == (status.value, amount_paid):
        return None
    row.status = status.value
    row.amount_paid = cents(amount_paid)
    return _bump(db, row, EVENT_FOR_STATUS.get(status, EventType.INVOICE_UPDATED), Origin.QBO)


def upsert_from_qbo(db: Session, location_id: str, invoice: Invoice, origin: Origin = Origin.QBO) -> tuple[str, HostEvent]:
    """Create or replace an invoice that QuickBooks owns; its totals are QuickBooks' own. Returns
    the invoice's id and its event."""
    return upsert_many_from_qbo(db, location_id, [invoice], origin)[0]


def upsert_many_from_qbo(db: Session, location_id: str, records: Sequence[Invoice],
                         origin: Origin = Origin.QBO) -> list[tuple[str, HostEvent]]:
    """`upsert_from_qbo` for many invoices, in order, with a few statements in all: the contacts
    and the invoices already there are read with IN queries, new invoices and all lines are inserted
    with one executemany each (no ORM objects for them), replaced lines deleted with one statement.
    Nothing is written if any invoice names a contact the location does not have."""
    contact_ids = sorted({invoice.contact_id for invoice in records})
    owners = dict(_in_chunks(db, contact_ids, lambda chunk: select(ContactRow.id, ContactRow.location_id)
                             .where(col(ContactRow.id).in_(chunk))))
    for contact_id in contact_ids:
        if owners.get(contact_id) != location_id:
            raise Invalid({"contact_id": [f"no contact {contact_id} in this location"]})
    wanted = sorted({invoice.id for invoice in records if invoice.id})
    found: dict[str, InvoiceRow] = {
        row.id: row for row in _in_chunks(db, wanted, lambda chunk: select(InvoiceRow).where(col(InvoiceRow.id).in_(chunk)))
    }
    ours = {row_id: row for row_id, row in found.items() if row.location_id == location_id}
    created: dict[str, dict[str, Any]] = {}  # id -> column values of an invoice new in this batch
    lines: dict[str, list[dict[str, Any]]] = {}
    written: list[tuple[str, HostEvent]] = []
    for invoice in records:
        values, new_lines = _qbo_values(invoice)
        now = utcnow()
        row = ours.get(invoice.id) if invoice.id else None
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)
            row.version += 1
            row.updated_at = now
            invoice_id, version = row.id, row.version
        elif invoice.id and invoice.id in created:  # named twice in the batch: the later values win
            invoice_id = invoice.id
            version = created[invoice_id]["version"] + 1
            created[invoice_id].update(values, version=version, updated_at=now)
        else:  # new: the id the plugin proposed, unless another location has it
            invoice_id = invoice.id if invoice.id and invoice.id not in found else new_id("inv")
            version = 1
            created[invoice_id] = {**values, "id": invoice_id, "location_id": location_id, "origin": origin.value,
                                   "version": version, "created_at": now, "updated_at": now}
        lines[invoice_id] = [{**line, "invoice_id": invoice_id} for line in new_lines]
        kind = EVENT_FOR_STATUS.get(invoice.status, EventType.INVOICE_UPDATED)
        written.append((invoice_id, HostEvent(type=kind, subject_id=invoice_id, key=f"invoice:{invoice_id}:v{version}",
                                              origin=origin, occurred_at=now)))
    db.flush()
    if created:
        db.execute(sa.insert(InvoiceRow.__table__), list(created.values()))  # type: ignore[attr-defined]
    replaced = sorted(ours)
    for start in range(0, len(replaced), IN_CHUNK):
        db.exec(delete(InvoiceLineRow).where(col(InvoiceLineRow.invoice_id).in_(replaced[start:start + IN_CHUNK])))
    new_lines = [line for invoice_lines_ in lines.values() for line in invoice_lines_]
    if new_lines:
        db.execute(sa.insert(InvoiceLineRow.__table__), new_lines)  # type: ignore[attr-defined]
    return written


def _in_chunks(db: Session, values: list[str], query: Callable[[list[str]], Any]) -> list[Any]:
    found: list[Any] = []
    for start in range(0, len(values), IN_CHUNK):
        found.extend(db.exec(query(values[start:start + IN_CHUNK])))
    return found


def _qbo_values(invoice: Invoice) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """QuickBooks' values of an invoice as column values, and its lines' (without invoice_id)."""
    subtotal = sum((cents(line.quantity * line.unit_price) for line in invoice.lines), ZERO)
    invoice_discount = cents(invoice.discount_total)
    discount_total = sum((cents(line.discount) for line in invoice.lines), invoice_discount)
    total = cents(invoice.total)
    values = {
        "contact_id": invoice.contact_id, "number": invoice.number[:40] if invoice.number else None,
        "status": invoice.status.value, "currency": invoice.currency.upper(), "issue_date": invoice.issue_date,
        "due_date": invoice.due_date, "billing_email": invoice.billing_email, "sent_at": invoice.sent_at,
        "taxes": [{"id": t.id, "name": t.name, "rate_percent": str(t.rate_percent)} for t in invoice.taxes],
        "subtotal": subtotal, "invoice_discount": invoice_discount, "discount_total": discount_total,
        "total": total, "tax_total": total - subtotal + discount_total, "amount_paid": cents(invoice.amount_paid),
    }
    lines = [
        {"position": position, "name": line.name[:200], "description": line.description[:4000], "sku": line.sku,
         "quantity": _fit(line.quantity, 4), "unit_price": _fit(line.unit_price, 3), "discount": cents(line.discount),
         "amount": cents(line.quantity * line.unit_price), "tax_ids": list(line.tax_ids)}
        for position, line in enumerate(invoice.lines, start=1)
    ]
    return values, lines


def to_plugin_invoice(row: InvoiceRow, lines: Sequence[InvoiceLineRow]) -> Invoice:
    return Invoice(
        id=row.id, contact_id=row.contact_id, number=row.number, status=InvoiceStatus(row.status),
        currency=row.currency, issue_date=row.issue_date, due_date=row.due_date,
        lines=tuple(
            LineItem(name=line.name, quantity=line.quantity, unit_price=line.unit_price, description=line.description,
                     sku=line.sku, discount=line.discount, tax_ids=tuple(line.tax_ids))
            for line in lines
        ),
        total=row.total, amount_paid=row.amount_paid, billing_email=row.billing_email,
        discount_total=row.invoice_discount,  # the plugin's discount_total is on top of line discounts
        taxes=tuple(Tax(id=t["id"], name=t["name"], rate_percent=Decimal(t["rate_percent"])) for t in row.taxes),
        origin=Origin(row.origin), sent_at=row.sent_at, updated_at=row.updated_at,
    )


def _bump(db: Session, row: InvoiceRow, kind: EventType | None, origin: Origin) -> HostEvent | None:
    row.version += 1
    row.updated_at = utcnow()
    db.add(row)
    db.flush()
    return invoice_event(row, kind, origin) if kind is not None else None


def _fit(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _free_number(db: Session, row: InvoiceRow, number: str) -> str:
    """`number` when no other live invoice of the location uses it (QuickBooks refuses a duplicate)."""
    taken = db.exec(select(InvoiceRow.id).where(
        InvoiceRow.location_id == row.location_id, InvoiceRow.number == number, InvoiceRow.id != row.id,
        InvoiceRow.status != InvoiceStatus.DELETED.value)).first()
    if taken is not None:
        raise Invalid({"number": [f"{number} is used by another invoice of this location"]})
    return number


def _check_contact(db: Session, location_id: str, contact_id: str) -> None:
    contact = db.get(ContactRow, contact_id)
    if contact is None or contact.location_id != location_id:
        raise Invalid({"contact_id": [f"no contact {contact_id} in this location"]})


def _check_dates(issue: date, due: date | None) -> None:
    if due is not None and due < issue:
        raise Invalid({"due_date": ["must not be before the issue date"]})


def _replace_lines(db: Session, row: InvoiceRow, lines: Sequence[Mapping[str, Any]]) -> None:
    """Validate `lines` against the location's tax rates, store them, and recompute the totals."""
    if not lines:
        raise Invalid({"lines": ["an invoice needs at least one line"]})
    rates = {r.id: r for r in db.exec(select(TaxRate).where(TaxRate.location_id == row.location_id))}
    errors: dict[str, list[str]] = {}
    amounts: list[LineAmounts] = []
    for index, line in enumerate(lines):
        tax_ids = tuple(dict.fromkeys(line.get("tax_ids") or ()))
        unknown = [t for t in tax_ids if t not in rates]
        if unknown:
            errors[f"lines.{index}.tax_ids"] = [f"unknown tax rate(s) for this location: {', '.join(unknown)}"]
        item = LineAmounts(line["quantity"], line["unit_price"], line.get("discount") or ZERO, tax_ids)
        if item.discount > item.amount:
            errors[f"lines.{index}.discount"] = [f"must not exceed the line amount ({item.amount})"]
        amounts.append(item)
    if errors:
        raise Invalid(errors)
    used = list(dict.fromkeys(t for item in amounts for t in item.tax_ids))
    totals = invoice_totals(amounts, {t: rates[t].rate_percent for t in used})
    db.exec(delete(InvoiceLineRow).where(col(InvoiceLineRow.invoice_id) == row.id))
    for position, (line, item) in enumerate(zip(lines, amounts, strict=True), start=1):
        db.add(InvoiceLineRow(
            invoice_id=row.id, position=position, name=line["name"], description=line.get("description") or "",
            sku=line.get("sku") or None, quantity=item.quantity, unit_price=item.unit_price,
            discount=cents(item.discount), amount=item.amount, tax_ids=list(item.tax_ids),
        ))
    row.taxes = [{"id": t, "name": rates[t].name, "rate_percent": str(rates[t].rate_percent)} for t in used]
    row.subtotal, row.discount_total = totals.subtotal, totals.discount_total
    row.tax_total, row.total = totals.tax_total, totals.total
