"""QBO Customer → CRM Contact (pure; no I/O).

QBO never deletes a customer: it makes it inactive and appends " (deleted)" to its DisplayName. Such
a customer maps to a contact flagged ``active=False`` with the suffix removed, so the CRM keeps the
person and shows them as inactive instead of losing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_qbo_plugin.host import Contact, Origin
from crm_qbo_plugin.qbo.timestamps import parse_timestamp

DELETED_SUFFIX = " (deleted)"


def _text(data: Mapping[str, Any], *path: str) -> str:
    value: Any = data
    for part in path:
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    return value.strip() if isinstance(value, str) else ""


def display_name(customer: Mapping[str, Any]) -> str:
    """The DisplayName without QBO's " (deleted)" marker."""
    name = _text(customer, "DisplayName")
    return name[: -len(DELETED_SUFFIX)].rstrip() if name.endswith(DELETED_SUFFIX) else name


def is_active(customer: Mapping[str, Any]) -> bool:
    return customer.get("Active") is not False


def customer_email(customer: Mapping[str, Any]) -> str | None:
    return _text(customer, "PrimaryEmailAddr", "Address") or None


def contact_from_customer(customer: Mapping[str, Any], contact_id: str) -> Contact:
    """The CRM contact for a QBO customer body. ``contact_id`` is the CRM id to write to.

    Names come from GivenName/FamilyName; a customer known only by a company keeps it as the company
    name; one known only by its DisplayName has it split into first and last name.
    """
    first, last = _text(customer, "GivenName"), _text(customer, "FamilyName")
    company = _text(customer, "CompanyName")
    if not (first or last or company):
        head, _sep, tail = display_name(customer).partition(" ")
        first, last = head, tail.strip()
    updated = _text(customer, "MetaData", "LastUpdatedTime")
    return Contact(
        id=contact_id,
        email=customer_email(customer),
        first_name=first,
        last_name=last,
        company_name=company,
        phone=_text(customer, "PrimaryPhone", "FreeFormNumber"),
        origin=Origin.QBO,
        updated_at=parse_timestamp(updated) if updated else None,
        active=is_active(customer),
    )


def same_contact(left: Contact, right: Contact) -> bool:
    """True when the fields QBO feeds are equal (so writing `right` over `left` changes nothing)."""
    return (
        (left.email or "").casefold() == (right.email or "").casefold()
        and left.first_name == right.first_name
        and left.last_name == right.last_name
        and left.company_name == right.company_name
        and left.phone == right.phone
        and left.active == right.active
    )
