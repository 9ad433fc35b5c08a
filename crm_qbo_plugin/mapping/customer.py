"""CRM contact → QBO Customer body (the fields we own: mapping/owned.py OWNED_FIELDS["Customer"])."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_qbo_plugin.host import Contact
from crm_qbo_plugin.mapping.field_map import apply_contact_fields
from crm_qbo_plugin.mapping.names import (
    MAX_PHONE,
    clean_text,
    cut,
    name_part,
    valid_email,
)


def customer_fields(contact: Contact, display: str, currency: str | None = None,
                    field_mapping: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Customer body for a create, or the sparse part of an update (without Id/SyncToken).

    Empty parts are left out rather than sent empty, so a sparse update never blanks a value a
    bookkeeper typed in QBO for a field the CRM leaves empty."""
    body: dict[str, Any] = {"DisplayName": display}
    given = name_part(contact.first_name)
    family = name_part(contact.last_name)
    company = name_part(contact.company_name)
    if given:
        body["GivenName"] = given
    if family:
        body["FamilyName"] = family
    if company:
        body["CompanyName"] = company
    email = valid_email(contact.email)
    if email:
        body["PrimaryEmailAddr"] = {"Address": email}
    phone = cut(clean_text(contact.phone), MAX_PHONE)
    if phone:
        body["PrimaryPhone"] = {"FreeFormNumber": phone}
    if currency:
        body["CurrencyRef"] = {"value": currency}
    return apply_contact_fields(body, contact.id, field_mapping)
