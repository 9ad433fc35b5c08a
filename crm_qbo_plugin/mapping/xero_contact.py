"""CRM contact ⇄ Xero Contact (pure; no I/O).

Outbound, a CRM contact is matched to an existing Xero contact by e-mail, then by name, before a
new one is created, so a person the bookkeeper already keeps in Xero is not doubled. Xero names are
unique among ACTIVE contacts (case-insensitive; xero-api.md §3.1): when the name is taken by a
different person, the next candidate from ``contact_name_candidates`` is tried — the name with the e-mail,
then with a short hash of the CRM record's identity, which no other record shares.

``ContactNumber`` (≤ 50, writable only through the API, "intended external key") carries the CRM
id, so a create whose answer was lost is found again by ``GET /Contacts/{ContactNumber}``.

Inbound, ``origin`` is ``Origin.QBO``: the books side. ``host.Origin`` has no Xero member yet; the
loop guard asks only "from the CRM or from the books?".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from crm_qbo_plugin.host import Contact, Origin
from crm_qbo_plugin.mapping.names import (
    MAX_PHONE,
    clean_text,
    contact_name,
    cut,
    name_part,
    valid_email,
)
from crm_qbo_plugin.xero.timestamps import parse_timestamp

MAX_CONTACT_NUMBER = 50
PHONE_TYPES = ("DEFAULT", "MOBILE")  # the ones a CRM phone maps to, in order of preference


def contact_number(contact_id: str) -> str:
    """The ContactNumber that names a CRM contact in Xero (long ids are hashed to fit 50)."""
    number = f"CRM-{clean_text(contact_id)}"
    if len(number) > MAX_CONTACT_NUMBER:
        number = "CRM-#" + hashlib.sha256(contact_id.encode()).hexdigest()[:40]
    return number


def contact_body(contact: Contact, name: str, *, number: str | None = None) -> dict[str, Any]:
    """The Contact for a create, or (with ``ContactID`` added) an update.

    Empty CRM fields are left out rather than sent empty, so an update never blanks what a
    bookkeeper typed in Xero. ``number`` is set on creates only: an existing Xero contact keeps
    the ContactNumber the bookkeeper may have given it."""
    body: dict[str, Any] = {"Name": name}
    first, last = name_part(contact.first_name), name_part(contact.last_name)
    if first:
        body["FirstName"] = first
    if last:
        body["LastName"] = last
    email = valid_email(contact.email)
    if email:
        body["EmailAddress"] = email
    phone = cut(clean_text(contact.phone), MAX_PHONE)
    if phone:
        body["Phones"] = [{"PhoneType": "DEFAULT", "PhoneNumber": phone}]
    if number:
        body["ContactNumber"] = number
    return body


def match_contact(contact: Contact, candidates: Sequence[Mapping[str, Any]]
                  ) -> tuple[Mapping[str, Any] | None, str]:
    """The active Xero contact that is this CRM contact: same e-mail first, else same name.

    Returns (contact, "email" | "name"), or (None, "") when none is. Archived contacts never
    match: Xero refuses invoices against them."""
    active = [c for c in candidates if c.get("ContactStatus", "ACTIVE") == "ACTIVE"]
    email = (valid_email(contact.email) or "").casefold()
    if email:
        for candidate in active:
            if _text(candidate, "EmailAddress").casefold() == email:
                return candidate, "email"
    name = contact_name(contact).casefold()
    for candidate in active:
        if _text(candidate, "Name").casefold() == name:
            return candidate, "name"
    return None, ""


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


def _phone(xero_contact: Mapping[str, Any]) -> str:
    phones = xero_contact.get("Phones")
    by_type = {p.get("PhoneType"): p for p in phones if isinstance(p, Mapping)} \
        if isinstance(phones, list) else {}
    for kind in PHONE_TYPES:
        phone = by_type.get(kind)
        if phone is not None and _text(phone, "PhoneNumber"):
            parts = (_text(phone, "PhoneCountryCode"), _text(phone, "PhoneAreaCode"),
                     _text(phone, "PhoneNumber"))
            return cut(" ".join(p for p in parts if p), MAX_PHONE)
    return ""


def contact_from_xero(xero_contact: Mapping[str, Any], contact_id: str) -> Contact:
    """The CRM contact for a Xero Contact. ``contact_id`` is the CRM id to write to.

    A Name that is not just "First Last" is a company's name and becomes the company; a contact
    known only by its Name has it split into first and last name. ARCHIVED → ``active=False``."""
    first, last = _text(xero_contact, "FirstName"), _text(xero_contact, "LastName")
    name = _text(xero_contact, "Name")
    company = ""
    if first or last:
        if name.casefold() != " ".join(p for p in (first, last) if p).casefold():
            company = name
    else:
        head, _sep, tail = name.partition(" ")
        first, last = head, tail.strip()
    updated = xero_contact.get("UpdatedDateUTC")
    return Contact(
        id=contact_id,
        email=valid_email(_text(xero_contact, "EmailAddress")),
        first_name=first,
        last_name=last,
        company_name=company,
        phone=_phone(xero_contact),
        origin=Origin.QBO,
        updated_at=parse_timestamp(updated) if isinstance(updated, str) and updated else None,
        active=xero_contact.get("ContactStatus", "ACTIVE") == "ACTIVE",
    )
