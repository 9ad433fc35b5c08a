"""JSON in and out of QBO with money kept exact.

Reading: every JSON number with a fraction becomes ``Decimal``; integers under money/quantity keys
(``"UnitPrice": 75``) become ``Decimal`` too, so arithmetic on amounts never mixes types. Writing:
``Decimal`` is emitted as a JSON number literal from its own digits (``0.30``, never
``0.30000000000000004``); floats are refused, so binary rounding cannot slip into the books.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["MONEY_KEYS", "dumps", "loads", "to_decimal"]

# Keys whose integer values are amounts, rates or quantities (QBO sends 75 and 75.5 alike).
MONEY_KEYS = frozenset(
    {
        "Amount",
        "Balance",
        "BalanceWithJobs",
        "CurrentBalance",
        "CurrentBalanceWithSubAccounts",
        "Deposit",
        "DiscountAmt",
        "DiscountPercent",
        "DiscountRate",
        "ExchangeRate",
        "HomeBalance",
        "HomeTotalAmt",
        "NetAmountTaxable",
        "OpenBalance",
        "OverrideDeltaAmount",
        "PurchaseCost",
        "Qty",
        "QtyOnHand",
        "TaxInclusiveAmount",
        "TaxInclusiveAmt",
        "TaxPercent",
        "TotalAmt",
        "TotalTax",
        "UnappliedAmt",
        "UnitPrice",
        "txnOpenBalance",
    }
)


def _hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in MONEY_KEYS and isinstance(value, int) and not isinstance(value, bool):
            value = Decimal(value)
        result[key] = value
    return result


def loads(data: bytes | str) -> Any:
    """Parse a QBO JSON body with ``Decimal`` for fractions and for integer amounts."""
    return json.loads(data, parse_float=Decimal, object_pairs_hook=_hook)


def to_decimal(value: Any) -> Decimal:
    """Coerce an amount read from QBO (``Decimal``, ``int`` or numeric string) to ``Decimal``."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool | float):
        raise TypeError(f"refusing to treat {value!r} as money")
    return Decimal(value)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite number to QBO: {value}")
        text = format(value, "f")
        out.append(text)
    elif isinstance(value, float):
        raise TypeError("floats are not sent to QBO; use Decimal for money and quantities")
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to QBO must be timezone-aware")
        out.append(json.dumps(value.isoformat()))
    elif isinstance(value, date):
        out.append(json.dumps(value.isoformat()))
    else:
        raise TypeError(f"cannot send a {type(value).__name__} to QBO as JSON")


def dumps(value: Any) -> bytes:
    """Serialise a request body to UTF-8 JSON, ``Decimal`` as exact number literals."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
