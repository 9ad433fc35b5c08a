"""Contacts: create and update (by the CRM's users or from QuickBooks), each change one host event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm_qbo_plugin import Contact, EventType, HostEvent, Origin
from reference_crm.db import utcnow
from reference_crm.errors import NotFound
from reference_crm.models import ContactRow, new_id

IN_CHUNK = 500  # ids per IN (...) query
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
    if not contact_id or db.get(ContactRow, contact_id) is not None:
        contact_id = new_id("ct")
    row = _new_row(location_id, data, origin, contact_id, utcnow())
    db.add(row)
    db.flush()
    return row, contact_event(row, origin)


def _new_row(location_id: str, data: Mapping[str, Any], origin: Origin, contact_id: str, now: datetime) -> ContactRow:
    row = ContactRow(id=contact_id, location_id=location_id, origin=origin.value, created_at=now, updated_at=now)
    _assign(row, data)
    return row


def update_contact(db: Session, row: ContactRow, data: Mapping[str, Any], origin: Origin = Origin.CRM) -> HostEvent | None:
    """Apply the given fields; None when nothing actually changed (no version, no event)."""
    event = _update_row(row, data, origin)
    if event is not None:
        db.add(row)
        db.flush()
    return event


def _update_row(row: ContactRow, data: Mapping[str, Any], origin: Origin) -> HostEvent | None:
    before = {name: getattr(row, name) for name in (*FIELDS, "active")}
    _assign(row, data)
    if before == {name: getattr(row, name) for name in (*FIELDS, "active")}:
        return None
    row.version += 1
    row.updated_at = utcnow()
    return contact_event(row, origin)


def upsert_from_plugin(db: Session, location_id: str, records: Sequence[Contact],
                       origin: Origin) -> list[tuple[str, HostEvent | None]]:
    """Create or update many contacts as the plugin asks (`CrmHost.upsert_contacts`); returns each
    one's id and event. Each contact is handled as `upsert_contact` would, in order: the location's
    contact with that id is updated (no event if nothing changed); otherwise one is created under
    the proposed id when no location uses it, else under a new id. The rows already there are read
    with one IN query; new ones are inserted with one executemany (no ORM objects for them)."""
    wanted = sorted({c.id for c in records if c.id})
    found: dict[str, ContactRow] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        for loaded in db.exec(select(ContactRow).where(col(ContactRow.id).in_(wanted[start:start + IN_CHUNK]))):
            found[loaded.id] = loaded
    created: dict[str, dict[str, Any]] = {}  # id -> column values of a contact new in this batch
    written: list[tuple[str, HostEvent | None]] = []
    for contact in records:
        data = from_plugin_contact(contact)
        row = found.get(contact.id) if contact.id else None
        if row is not None and row.location_id == location_id:
            written.append((row.id, _update_row(row, data, origin)))
            continue
        values = {**dict.fromkeys(FIELDS, ""), **_cleaned(data), "active": data.get("active", True)}
        values["email_key"] = email_key(values["email"])
        now = utcnow()
        if contact.id and contact.id in created:  # named twice in the batch: as an update
            new = created[contact.id]
            if all(new[name] == values[name] for name in (*FIELDS, "active")):
                written.append((contact.id, None))
                continue
            new.update(values, version=new["version"] + 1, updated_at=now)
        else:
            contact_id = contact.id if contact.id and row is None else new_id("ct")
            new = created[contact_id] = {**values, "id": contact_id, "location_id": location_id, "origin": origin.value,
                                         "version": 1, "created_at": now, "updated_at": now}
        kind = EventType.CONTACT_CREATED if new["version"] == 1 else EventType.CONTACT_UPDATED
        written.append((new["id"], HostEvent(type=kind, subject_id=new["id"], key=f"contact:{new['id']}:v{new['version']}",
                                             origin=origin, occurred_at=now)))
    db.flush()
    if created:
        db.execute(sa.insert(ContactRow.__table__), list(created.values()))  # type: ignore[attr-defined]
    return written


def _assign(row: ContactRow, data: Mapping[str, Any]) -> None:
    for name, value in _cleaned(data).items():
        setattr(row, name, value)
    if "active" in data:  # from QuickBooks only: the API never takes it
        row.active = bool(data["active"])
    row.email_key = email_key(row.email)


def _cleaned(data: Mapping[str, Any]) -> dict[str, Any]:
    """The given FIELDS trimmed, cut to their columns' widths; an empty e-mail is None."""
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name in data:
            value = data[name]
            if name == "email":
                value = value.strip() if value and value.strip() else None
            else:
                value = (value or "").strip()
            values[name] = value[: LIMITS[name]] if value else value
    return values


def to_plugin_contact(row: ContactRow) -> Contact:
    return Contact(
        id=row.id, email=row.email, first_name=row.first_name, last_name=row.last_name,
        company_name=row.company, phone=row.phone, origin=Origin(row.origin), updated_at=row.updated_at,
        active=row.active,
    )


def from_plugin_contact(contact: Contact) -> dict[str, Any]:
    return {"first_name": contact.first_name, "last_name": contact.last_name, "email": contact.email,
            "phone": contact.phone, "company": contact.company_name, "active": contact.active}


def display_name(row: ContactRow) -> str:
    return " ".join(part for part in (row.first_name, row.last_name) if part) or row.company or row.email or row.id
