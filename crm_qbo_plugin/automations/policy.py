"""Pure rules about QBO invoices: void, paid in full, and which invoice is a customer's first.

"First" is the customer's earliest non-void invoice by transaction date, then creation time, then
Id — whichever side created it — never simply the first one we happened to process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

ZERO = Decimal("0")


def _amount(invoice: Mapping[str, Any], field: str) -> Decimal:
    value = invoice.get(field)
    return Decimal(str(value)) if value not in (None, "") else ZERO


def is_void(invoice: Mapping[str, Any]) -> bool:
    """QBO voids zero the amounts and prepend "Voided" to the private note."""
    note = str(invoice.get("PrivateNote") or "")
    return note.startswith("Voided") and _amount(invoice, "TotalAmt") == ZERO


def paid_in_full(invoice: Mapping[str, Any]) -> bool:
    """Balance zero with a positive total because payments were applied (not void, not $0)."""
    if is_void(invoice) or _amount(invoice, "TotalAmt") <= ZERO or _amount(invoice, "Balance") != ZERO:
        return False
    return any(link.get("TxnType") == "Payment" for link in invoice.get("LinkedTxn") or [] if isinstance(link, Mapping))


def _order_key(invoice: Mapping[str, Any]) -> tuple[str, str, int, str]:
    created = str((invoice.get("MetaData") or {}).get("CreateTime") or "")
    raw_id = str(invoice.get("Id") or "")
    return (str(invoice.get("TxnDate") or ""), created, int(raw_id) if raw_id.isdigit() else 0, raw_id)


def first_invoice(invoices: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    candidates = [inv for inv in invoices if not is_void(inv)]
    return min(candidates, key=_order_key) if candidates else None
