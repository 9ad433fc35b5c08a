"""Invoice arithmetic, pure and in Decimal.

A line's amount is quantity × unit price rounded to cents; its discount is an amount (not a
percentage) taken off that line; each tax rate applies to the discounted amounts of the lines that
carry it and is rounded to cents once per rate. total = subtotal − discounts + taxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineAmounts:
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    tax_ids: tuple[str, ...]

    @property
    def amount(self) -> Decimal:
        return cents(self.quantity * self.unit_price)

    @property
    def net(self) -> Decimal:
        return self.amount - self.discount


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal
    tax_by_id: Mapping[str, Decimal]


def invoice_totals(lines: Sequence[LineAmounts], rates: Mapping[str, Decimal]) -> Totals:
    """Totals of an invoice; `rates` maps each tax id used by a line to its rate in percent."""
    subtotal = sum((line.amount for line in lines), Decimal("0.00"))
    discount_total = sum((cents(line.discount) for line in lines), Decimal("0.00"))
    tax_by_id: dict[str, Decimal] = {}
    for tax_id, rate in rates.items():
        base = sum((line.net for line in lines if tax_id in line.tax_ids), Decimal("0"))
        tax_by_id[tax_id] = cents(base * rate / Decimal(100))
    tax_total = sum(tax_by_id.values(), Decimal("0.00"))
    return Totals(subtotal, discount_total, tax_total, subtotal - discount_total + tax_total, tax_by_id)
