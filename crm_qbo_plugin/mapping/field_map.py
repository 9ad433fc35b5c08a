"""Field mapping (the card's "Map fields"): which CRM field fills which QuickBooks field.

Stored per location in the card settings as {"<record>.<crm field>": "<QuickBooks field>"}; a key
left out takes today's behaviour (DEFAULTS). Each choice carries QuickBooks' length limit for that
field (docs/reference/qbo-api.md), and the functions here cut a value to it, so a mapped value never
makes QuickBooks refuse a record. Only fields QuickBooks never sends back into the CRM are offered
as targets besides the defaults, so a mapping can never blank a CRM field on the way back in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_qbo_plugin.mapping.names import clean_text, cut, doc_number

NONE = "none"  # the CRM field is not sent
# CRM field -> {QuickBooks field: its length limit}; the first target is the default.
TARGETS: dict[str, dict[str, int]] = {
    "invoice.number": {"DocNumber": 21, "PrivateNote": 4000, "CustomerMemo": 1000, NONE: 0},
    "contact.id": {NONE: 0, "Notes": 2000},
}
DEFAULTS: dict[str, str] = {field: next(iter(targets)) for field, targets in TARGETS.items()}
LABELS: dict[str, str] = {
    "invoice.number": "Invoice number",
    "contact.id": "Contact reference",
}


def problems(mapping: Mapping[str, Any]) -> dict[str, str]:
    """Why each entry of `mapping` cannot be stored ({} when all can)."""
    found: dict[str, str] = {}
    for field, target in mapping.items():
        if field not in TARGETS:
            found[field] = f"not a mapped CRM field (one of {', '.join(TARGETS)})"
        elif target not in TARGETS[field]:
            found[field] = f"must be one of {', '.join(TARGETS[field])}"
    return found


def resolved(mapping: Mapping[str, str] | None) -> dict[str, str]:
    """The mapping with every field present (stored choices over the defaults; unknown ones dropped)."""
    out = dict(DEFAULTS)
    for field, target in (mapping or {}).items():
        if field in TARGETS and target in TARGETS[field]:
            out[field] = target
    return out


def fitted(value: str | None, field: str, target: str) -> str:
    """`value` cleaned and cut to the QuickBooks field's limit ("" when not sent)."""
    if target == NONE:
        return ""
    return cut(clean_text(value), TARGETS[field][target])


def apply_invoice_number(body: dict[str, Any], number: str | None, mapping: Mapping[str, str] | None,
                         custom_txn_numbers: bool) -> dict[str, Any]:
    """`body` (which already carries the CRM marker in PrivateNote) with the invoice number where
    the mapping sends it. DocNumber only when the company uses custom numbers (else QuickBooks
    numbers the invoice itself and refuses ours); the marker always stays first in PrivateNote."""
    target = resolved(mapping)["invoice.number"]
    out = dict(body)
    if target == "DocNumber":
        number_text = doc_number(number)
        if custom_txn_numbers and number_text:
            out["DocNumber"] = number_text
    elif target == "PrivateNote":
        marker = str(out.get("PrivateNote") or "")
        text = fitted(number, "invoice.number", target)
        if text:
            out["PrivateNote"] = cut(f"{marker} · Invoice {text}" if marker else f"Invoice {text}", 4000)
    elif target == "CustomerMemo":
        text = fitted(number, "invoice.number", target)
        if text:
            out["CustomerMemo"] = {"value": cut(f"Invoice {text}", 1000)}
    return out


def apply_contact_fields(body: dict[str, Any], contact_id: str, mapping: Mapping[str, str] | None) -> dict[str, Any]:
    """`body` with the contact's mapped extras (e.g. its CRM reference in Notes)."""
    target = resolved(mapping)["contact.id"]
    out = dict(body)
    reference = clean_text(contact_id)
    if target == "Notes" and reference:  # an id that cleans to nothing sends no bare "CRM contact"
        out["Notes"] = fitted(f"CRM contact {reference}", "contact.id", target)
    return out
