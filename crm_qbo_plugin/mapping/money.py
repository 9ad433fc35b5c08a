"""Money arithmetic for pushing amounts QBO will recompute: cents, exact allocation, unit prices.

QBO recomputes every sales line as ``Amount = round(Qty × UnitPrice, 2)`` and the total as the sum
of the lines (plus tax it computes itself). So the US path never hands QBO a figure to derive: it
decides each line's amount in whole cents, with the line amounts summing exactly to the CRM total,
and only then picks a (Qty, UnitPrice) pair that reproduces that amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0")
UNIT_PRICE_PLACES = Decimal("0.00001")  # QBO keeps 5 decimals of a unit price


def cents(value: Decimal) -> Decimal:
    """Round half up to the cent (what QBO and most CRMs do)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split `total` (in cents) over `weights` so the parts are whole cents and sum exactly to it.

    Largest remainder: every part is floored to the cent, then the missing cents go one each to the
    parts with the largest remainders (ties to the earlier part), so the result is deterministic.
    Weights summing to zero (e.g. +5 and -5) keep their own amounts and the first largest part
    absorbs the difference.
    """
    if not weights:
        raise ValueError("cannot allocate over no lines")
    total = cents(total)
    weight_sum = sum(weights, ZERO)
    if weight_sum == 0:
        parts = [cents(w) for w in weights]
        biggest = max(range(len(parts)), key=lambda i: (abs(weights[i]), -i))
        parts[biggest] += total - sum(parts, ZERO)
        return parts
    raw = [total * w / weight_sum for w in weights]
    parts = [r.quantize(CENT, rounding=ROUND_FLOOR) for r in raw]
    missing = int((total - sum(parts, ZERO)) / CENT)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - parts[i]), i))
    for i in order[:missing]:
        parts[i] += CENT
    return parts


def unit_price_for(amount: Decimal, quantity: Decimal) -> Decimal | None:
    """A UnitPrice (≤ 5 decimals) with ``round(quantity × price, 2) == amount``, or None when no
    such price exists (then send Qty 1 and the amount as the price)."""
    if not quantity.is_finite() or quantity <= 0:
        return None
    price = (amount / quantity).quantize(UNIT_PRICE_PLACES, rounding=ROUND_HALF_UP)
    for candidate in (price, price + UNIT_PRICE_PLACES, price - UNIT_PRICE_PLACES):
        if cents(quantity * candidate) == amount:
            return tidy(candidate)
    return None


def tidy(value: Decimal) -> Decimal:
    """`value` without trailing zeros and never in exponent form (25.50000 → 25.5, 1E+2 → 100)."""
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal
