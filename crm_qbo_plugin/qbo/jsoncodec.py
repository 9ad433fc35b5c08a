"""JSON in and out of QBO with money kept exact: ``apiclient.jsoncodec`` with QBO's money keys.

QBO sends ``"UnitPrice": 75`` and ``75.5`` alike, so integers under ``MONEY_KEYS`` are read as
``Decimal`` too; fractions always are, and ``dumps`` writes ``Decimal`` from its own digits and
refuses floats.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from crm_qbo_plugin.apiclient.jsoncodec import dumps
from crm_qbo_plugin.apiclient.jsoncodec import loads as _loads

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


def loads(data: bytes | str) -> Any:
    """Parse a QBO JSON body with ``Decimal`` for fractions and for integer amounts."""
    return _loads(data, money_keys=MONEY_KEYS)


def to_decimal(value: Any) -> Decimal:
    """Coerce an amount read from QBO (``Decimal``, ``int`` or numeric string) to ``Decimal``."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool | float):
        raise TypeError(f"refusing to treat {value!r} as money")
    return Decimal(value)
