"""The fields the plugin owns on each QBO entity, and a stable hash of them.

The write ledger stores this hash for every write the plugin makes (computed from QBO's response).
When a change notice comes back with the same SyncToken and the same owned-field hash, it is our
own echo and is dropped; anything else — a person editing the record right after us — goes through.
Both sync directions must hash with this one function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

OWNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Customer": (
        "DisplayName", "GivenName", "FamilyName", "CompanyName", "PrimaryEmailAddr.Address",
        "PrimaryPhone.FreeFormNumber", "Active",
    ),
    "Invoice": (
        "DocNumber", "TxnDate", "DueDate", "CustomerRef.value", "BillEmail.Address", "CurrencyRef.value",
        "TotalAmt", "Balance", "Line", "TxnTaxDetail.TotalTax", "PrivateNote",
    ),
    "SalesReceipt": ("DocNumber", "TxnDate", "CustomerRef.value", "CurrencyRef.value", "TotalAmt", "Line", "PrivateNote"),
    "Payment": ("TxnDate", "CustomerRef.value", "CurrencyRef.value", "TotalAmt", "Line", "PrivateNote"),
    "Item": ("Name", "Sku", "Type", "IncomeAccountRef.value", "Active"),
    # Xero's records, as the plugin writes them (outbound/xero_*.py).
    "XeroContact": ("Name", "FirstName", "LastName", "EmailAddress", "ContactStatus"),
    "XeroInvoice": ("InvoiceNumber", "Date", "DueDate", "Contact.ContactID", "CurrencyCode", "Total", "AmountDue",
                    "Status"),
    "XeroPayment": ("Date", "Amount", "Invoice.InvoiceID", "Status"),
}

_LINE_FIELDS = (
    "DetailType", "Amount", "Description",
    "SalesItemLineDetail.ItemRef.value", "SalesItemLineDetail.Qty", "SalesItemLineDetail.UnitPrice",
    "SalesItemLineDetail.TaxCodeRef.value", "DiscountLineDetail.PercentBased",
    "DiscountLineDetail.DiscountPercent", "LinkedTxn",
)


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _normal(value: Any) -> Any:
    """Numbers compare by value (10, 10.0 and Decimal('10.00') hash alike); strings as given."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return str(value)


def _lines(lines: Any) -> list[Any]:
    if not isinstance(lines, list):
        return []
    out = []
    for line in lines:
        if not isinstance(line, Mapping) or line.get("DetailType") == "SubTotalLineDetail":
            continue  # computed by QBO, not ours
        linked = line.get("LinkedTxn")
        out.append([
            _normal(sorted((t.get("TxnId"), t.get("TxnType")) for t in linked)) if isinstance(linked, list) and field == "LinkedTxn"
            else _normal(_get(line, field))
            for field in _LINE_FIELDS
        ])
    return out


def owned_values(entity: str, data: Mapping[str, Any]) -> dict[str, Any]:
    try:
        fields = OWNED_FIELDS[entity]
    except KeyError:
        raise ValueError(f"no owned fields are defined for QBO entity {entity!r}") from None
    return {f: _lines(data.get("Line")) if f == "Line" else _normal(_get(data, f)) for f in fields}


def owned_hash(entity: str, data: Mapping[str, Any]) -> str:
    """SHA-256 of the owned fields of `data` (a QBO or Xero record), canonically serialised."""
    canonical = json.dumps(owned_values(entity, data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
