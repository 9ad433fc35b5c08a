"""CRM invoice → Xero ACCREC invoice, with totals equal to the CRM's to the cent (pure; no I/O).

Xero computes each line as ``round(Quantity × UnitAmount, 2) − DiscountAmount``, its tax per line
rounded to the cent and then summed, and the total as lines + tax (Exclusive) or the lines alone
(Inclusive, NoTax) (xero-api.md §3.3, the rounding guide: lines 25.06/25.61/25.63 at 15 % give
11.44 of tax where "total then tax" gives 11.45). A CRM that rounds differently would disagree by
a cent, so nothing is left for Xero to derive:

1. The CRM's net (after line discounts, then the invoice's own discount spread over the lines by
   largest remainder) is split into whole-cent line amounts summing exactly to it.
2. The CRM's tax (its total minus that net) is split over the taxed lines by amount × rate the same
   way and sent as each line's ``TaxAmount`` — Xero's documented override for rounding
   differences — so Xero's tax equals the CRM's.
3. Exclusive lines carry the net amounts; Inclusive and NoTax lines carry net + tax (NoTax lines
   have no tax of their own: the CRM's tax is folded into the price, as for QBO in the US).
4. Each amount is written as the CRM's Quantity × UnitAmount less a ``DiscountAmount`` when that
   reproduces it, else as Quantity × a 4-decimal UnitAmount (sent with ``unitdp=4``) that does,
   else as 1 × the amount with the real quantity kept in the description.

``expected_totals`` mirrors Xero's arithmetic on a body, so a push can check Xero's answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from crm_qbo_plugin.host import Invoice, LineItem, Tax
from crm_qbo_plugin.mapping.money import ZERO, allocate, cents, tidy
from crm_qbo_plugin.mapping.names import GENERIC_ITEM_NAME, clean_text, description, item_key

HUNDRED = Decimal(100)
UNIT_PLACES = Decimal("0.0001")  # Xero keeps 4 decimals of a unit amount with unitdp=4
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
NO_TAX_KEY = "none"
NO_TAX_TYPE = "NONE"
MAX_INVOICE_NUMBER = 255


class MappingError(ValueError):
    """The record cannot be expressed in Xero as configured; the message says what to change."""


@dataclass(frozen=True)
class XeroBooks:
    """The organisation's facts and the card's settings the mapping depends on."""

    base_currency: str
    revenue_account: str  # AccountCode of lines (an item's own account is not relied on)
    line_amount_types: str = "Exclusive"
    # CRM tax id (or ids joined by "+") → Xero TaxType; "none" → the TaxType of untaxed lines.
    tax_mapping: Mapping[str, str] = field(default_factory=dict)
    payment_account: str = ""  # AccountCode of the bank account payments go to
    currencies: frozenset[str] = frozenset()  # enabled currencies besides the base one

    def __post_init__(self) -> None:
        if self.line_amount_types not in LINE_AMOUNT_TYPES:
            raise MappingError(f"LineAmountTypes must be one of {', '.join(LINE_AMOUNT_TYPES)}")


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def _net(line: LineItem) -> Decimal:
    """The line's amount as a CRM (and Xero itself) keeps it: rounded to the cent per line."""
    return cents(line.quantity * line.unit_price - line.discount)


def _rate(line: LineItem, taxes: Mapping[str, Tax]) -> Decimal:
    return sum((taxes[t].rate_percent for t in set(line.tax_ids) if t in taxes), ZERO)


def _split(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """``allocate``, but all-zero weights get nothing (and then ``total`` must be zero)."""
    if not any(weights):
        if cents(total) != ZERO:
            raise MappingError("the CRM invoice has tax but none of its lines is taxed")
        return [ZERO for _ in weights]
    return allocate(total, weights)


def line_split(invoice: Invoice) -> tuple[list[Decimal], list[Decimal]]:
    """(net line amounts, line taxes), whole cents, summing to the CRM's net and tax exactly."""
    if not invoice.lines:
        raise MappingError("the invoice has no lines")
    nets = [_net(line) for line in invoice.lines]
    net_total = cents(sum(nets, ZERO) - invoice.discount_total)
    amounts = _split(net_total, nets) if any(nets) else [net_total] + [ZERO] * (len(nets) - 1)
    taxes = {tax.id: tax for tax in invoice.taxes}
    tax_weights = [amount * _rate(line, taxes) for line, amount in zip(invoice.lines, amounts,
                                                                        strict=True)]
    return amounts, _split(cents(invoice.total) - net_total, tax_weights)


def tax_type(line: LineItem, books: XeroBooks, taxes: Mapping[str, Tax]) -> str:
    mapping = books.tax_mapping
    if not line.tax_ids:
        return mapping.get(NO_TAX_KEY) or NO_TAX_TYPE
    ids = sorted(set(line.tax_ids))
    code = mapping.get("+".join(ids)) or (mapping.get(ids[0]) if len(ids) == 1 else None)
    if not code:
        names = " + ".join(taxes[i].name if i in taxes else i for i in ids)
        raise MappingError(f"map the CRM tax {names} to a Xero tax rate on the card")
    return code


def _unit_amount(amount: Decimal, quantity: Decimal) -> Decimal | None:
    """A 4-decimal UnitAmount with ``round(quantity × it, 2) == amount``, or None."""
    if not quantity.is_finite() or quantity <= 0:
        return None
    price = (amount / quantity).quantize(UNIT_PLACES, rounding=ROUND_HALF_UP)
    for candidate in (price, price + UNIT_PLACES, price - UNIT_PLACES):
        if cents(quantity * candidate) == amount:
            return tidy(candidate)
    return None


def _has_places(value: Decimal, places: int) -> bool:
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -places


def priced(line: LineItem | None, amount: Decimal, text: str) -> dict[str, Any]:
    """Quantity/UnitAmount(/DiscountAmount) that make Xero compute exactly ``amount``."""
    out: dict[str, Any] = {"Description": text}
    if line is not None and _has_places(line.quantity, 4) and _has_places(line.unit_price, 4) \
            and line.quantity > 0 and line.unit_price >= 0:
        gross = cents(line.quantity * line.unit_price)
        if ZERO <= gross - amount <= gross:
            out.update(Quantity=tidy(line.quantity), UnitAmount=tidy(line.unit_price))
            if gross != amount:
                out["DiscountAmount"] = gross - amount
            return out
    quantity = line.quantity if line is not None else Decimal(1)
    price = _unit_amount(amount, quantity) if _has_places(quantity, 4) else None
    if price is not None:
        out.update(Quantity=tidy(quantity), UnitAmount=price)
        return out
    if line is not None and quantity != 1:
        note = f"({tidy(quantity)} × {tidy(line.unit_price)})"
        out["Description"] = description(f"{text} {note}")
    out.update(Quantity=Decimal(1), UnitAmount=amount)
    return out


def invoice_number(invoice: Invoice) -> str:
    """The CRM's number (so the invoice is findable in Xero by it), else one from the CRM id."""
    number = clean_text(invoice.number)[:MAX_INVOICE_NUMBER]
    return number or f"CRM-{clean_text(invoice.id)}"[:MAX_INVOICE_NUMBER]


def invoice_lines(invoice: Invoice, books: XeroBooks,
                  item_codes: Mapping[str, str]) -> list[dict[str, Any]]:
    amounts, line_taxes = line_split(invoice)
    taxes = {tax.id: tax for tax in invoice.taxes}
    mode = books.line_amount_types
    out = []
    for line, amount, tax in zip(invoice.lines, amounts, line_taxes, strict=True):
        target = amount if mode == "Exclusive" else amount + tax
        body = priced(line, target, description(line.description or line.name) or GENERIC_ITEM_NAME)
        code = item_codes.get(item_key(line.name, line.sku))
        if code:
            body["ItemCode"] = code
        body["AccountCode"] = books.revenue_account
        if mode == "NoTax":
            if any(line_taxes) and books.tax_mapping.get(NO_TAX_KEY) not in (None, NO_TAX_TYPE):
                raise MappingError("NoTax invoices cannot carry a tax rate; map \"no tax\" to NONE")
        else:
            body["TaxType"] = tax_type(line, books, taxes)
            body["TaxAmount"] = tax
        out.append(body)
    return out


def invoice_body(invoice: Invoice, books: XeroBooks, contact_id: str,
                 item_codes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ACCREC invoice for a create, and (with ``InvoiceID`` and each line's ``LineItemID``)
    for an update. Always AUTHORISED: the CRM pushes only invoices it has sent."""
    problem = currency_problem(invoice.currency, books)
    if problem:
        raise MappingError(problem)
    body: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "InvoiceNumber": invoice_number(invoice),
        "Date": invoice.issue_date.isoformat(),
        "Status": "AUTHORISED",
        "LineAmountTypes": books.line_amount_types,
        "CurrencyCode": invoice.currency.upper(),
        "LineItems": invoice_lines(invoice, books, item_codes or {}),
    }
    if invoice.due_date is not None:
        body["DueDate"] = invoice.due_date.isoformat()
    return body


def keep_line_ids(body: dict[str, Any], existing: Mapping[str, Any]) -> dict[str, Any]:
    """Give the update's lines the existing invoice's LineItemIDs, in order: Xero deletes and
    re-creates any line sent without its id (xero-api.md §3.2)."""
    old = existing.get("LineItems")
    ids = [line.get("LineItemID") for line in old if isinstance(line, Mapping)] \
        if isinstance(old, list) else []
    lines = [dict(line) for line in body["LineItems"]]
    for line, line_id in zip(lines, ids, strict=False):
        if line_id:
            line["LineItemID"] = line_id
    return {**body, "InvoiceID": existing["InvoiceID"], "LineItems": lines}


def expected_totals(body: Mapping[str, Any], rates: Mapping[str, Decimal]) -> Totals:
    """What Xero computes for ``body`` (rates: TaxType → EffectiveRate %): per line
    ``round(Q × U, 2)`` less the discount, tax per line rounded (or the given TaxAmount), summed."""
    mode = body.get("LineAmountTypes", "Exclusive")
    line_sum = tax_sum = ZERO
    for line in body["LineItems"]:
        quantity = Decimal(str(line.get("Quantity", 1)))
        unit = Decimal(str(line["UnitAmount"])).quantize(UNIT_PLACES, rounding=ROUND_HALF_UP)
        amount = cents(quantity * unit)
        if "DiscountRate" in line:
            amount = cents(quantity * unit * (HUNDRED - Decimal(str(line["DiscountRate"]))) / HUNDRED)
        elif "DiscountAmount" in line:
            amount = cents(quantity * unit - cents(Decimal(str(line["DiscountAmount"]))))
        rate = rates.get(str(line.get("TaxType") or NO_TAX_TYPE), ZERO)
        if mode == "NoTax":
            tax = ZERO
        elif "TaxAmount" in line:
            tax = cents(Decimal(str(line["TaxAmount"])))
        elif mode == "Inclusive":
            tax = cents(amount * rate / (HUNDRED + rate))
        else:
            tax = cents(amount * rate / HUNDRED)
        line_sum += amount
        tax_sum += tax
    if mode == "Exclusive":
        return Totals(line_sum, tax_sum, line_sum + tax_sum)
    return Totals(line_sum - tax_sum, tax_sum, line_sum)


def currency_problem(currency: str, books: XeroBooks) -> str | None:
    """Why a record in ``currency`` cannot be pushed (None when it can)."""
    code = currency.upper()
    if code == books.base_currency.upper() or code in books.currencies:
        return None
    return (f"the record is in {code} but the Xero organisation's base currency is "
            f"{books.base_currency.upper()} and {code} is not enabled in Xero: add it under "
            f"Settings → Currencies in Xero or use {books.base_currency.upper()} in the CRM, "
            "then retry")
