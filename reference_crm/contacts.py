"""Contacts: create and update (by the CRM's users or from QuickBooks), each change one host event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from crm_qbo_plugin import Contact, EventType, HostEvent, Origin
from reference_crm.db import utcnow
from reference_crm.errors import NotFound
from reference_crm.models import ContactRow, new_id

FIELDS = ("first_name", "last_name", "email", "phone", "company")
# Column widths: values from QuickBooks are cut to fit (what users type is validated instead).
LIMITS = {"first_name": 100, "last_name": 100, "email": 254, "phone": 40, "company": 200}


def email_key(email: str | None) -> str | None:
    return email.strip().casefold() if email and email.strip() else None


def contact_event(row: ContactRow, origin: Origin) -> HostEvent:
    kind = EventType.CONTACT_CREATED if row.version == 1 else EventType.CONTACT_UPDATED
    return HostEvent(type=kind, subject_id=row.id, key=f"contact:{row.id}:v{row.version}", origin=origin,
                     occurred_at=row.updated_at)


def get_contact_row(db: Session, location_id: str, contact_id: str) -> ContactRow:
    row = db.get(ContactRow, contact_id)
    if row is None or row.location_id != location_id:
        raise NotFound(f"contact {contact_id} not found")
    return row


def list_contacts(db: Session, location_id: str) -> list[ContactRow]:
    query = select(ContactRow).where(ContactRow.location_id == location_id)
    return list(db.exec(query.order_by(col(ContactRow.created_at).desc(), col(ContactRow.id))))


def create_contact(db: Session, location_id: str, data: Mapping[str, Any], origin: Origin = Origin.CRM,
                   contact_id: str | None = None) -> tuple[ContactRow, HostEvent]:
    """`data` holds validated FIELDS (see api.schemas.ContactIn); `contact_id` is an id proposed
    by the caller (the plugin proposes stable ids for imports), used unless it is taken."""
    now = utcnow()
    if not contact_id or db.get(ContactRow, contact_id) is not None:
        contact_id = new_id("ct")
    row = ContactRow(id=contact_id, location_id=location_id, origin=origin.value, created_at=now, updated_at=now)
    _assign(row, data)
    db.add(row)
    db.flush()
    return row, contact_event(row, origin)


def update_contact(db: Session, row: ContactRow, data: Mapping[str, Any], origin: Origin = Origin.CRM) -> HostEvent | None:
    """Apply the given fields; None when nothing actually changed (no version, no event)."""
    before = {name: getattr(row, name) for name in FIELDS}
    _assign(row, data)
    if before == {name: getattr(row, name) for name in FIELDS}:
        return None
    row.version += 1
    row.updated_at = utcnow()
    db.add(row)
    db.flush()
    return contact_event(row, origin)


def _assign(row: ContactRow, data: Mapping[str, Any]) -> None:
    for name in FIELDS:
        if name in data:
            value = data[name]
            if name == "email":
                value = value.strip() if value and value.strip() else None
            else:
                value = (value or "").strip()
            setattr(row, name, value[: LIMITS[name]] if value else value)
    row.email_key = email_key(row.email)


def to_plugin_contact(row: ContactRow) -> Contact:
    return Contact(
        id=row.id, email=row.email, first_name=row.first_name, last_name=row.last_name,
        company_name=row.company, phone=row.phone, origin=Origin(row.origin), updated_at=row.updated_at,
    )


def from_plugin_contact(contact: Contact) -> dict[str, Any]:
    return {"first_name": contact.first_name, "last_name": contact.last_name, "email": contact.email,
            "phone": contact.phone, "company": contact.company_name}


def display_name(row: ContactRow) -> str:
    return " ".join(part for part in (row.first_name, row.last_name) if part) or row.company or row.email or row.id
