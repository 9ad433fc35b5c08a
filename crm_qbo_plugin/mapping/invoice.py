"""CRM invoice → QBO Invoice body, and the sales lines shared with sales receipts.

US companies (no per-line tax codes worth trusting, AST ignores what apps send): discounts and
taxes are folded into the lines. The CRM total is split over the lines by weight (net amount ×
(1 + the line's tax rate)) with the largest-remainder rule, so the line amounts are whole cents
that sum *exactly* to the CRM total; every line is non-taxable (NON) and QBO's TotalAmt equals the
CRM total to the cent whatever rounding the CRM used. Each amount is then written as Qty ×
UnitPrice with a unit price QBO reproduces exactly, or as Qty 1 × amount (the real quantity kept in
the description) when no such price exists.

Other regions: line amounts are the CRM's net line amounts, the invoice's own discount
(`Invoice.discount_total`, on top of any line discounts, which are folded into their lines) is a
DiscountLineDetail line, and each line carries the QBO tax code mapped on the card from its CRM
tax(es) (`settings["tax_mapping"]`: CRM tax id, or ids joined with "+", → TaxCode id; "none" for
untaxed lines beside taxed ones). QBO computes the tax; the push compares totals afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.host import Invoice, LineItem, Tax
from crm_qbo_plugin.mapping.field_map import apply_invoice_number
from crm_qbo_plugin.mapping.money import ZERO, allocate, cents, tidy, unit_price_for
from crm_qbo_plugin.mapping.names import (
    GENERIC_ITEM_NAME,
    description,
    item_key,
    valid_email,
)

HUNDRED = Decimal(100)
NO_TAX_KEY = "none"
US_NON_TAXABLE = "NON"


class MappingError(ValueError):
    """The record cannot be expressed in QBO as configured; the message says what to change."""


@dataclass(frozen=True)
class Company:
    """The company facts and card settings the mapping depends on."""

    us: bool
    home_currency: str
    multicurrency: bool = False
    custom_txn_numbers: bool = False
    tax_mapping: Mapping[str, str] | None = None
    field_mapping: Mapping[str, str] | None = None  # the card's "Map fields" (mapping/field_map.py)


def crm_marker(tenant: str, record_id: str) -> str:
    """The PrivateNote marker that lets a retry find a record an earlier attempt created."""
    return f"CRM ref: {tenant}/{record_id}"


def line_keys(lines: Sequence[LineItem]) -> list[str]:
    """The item keys (link crm_ids) the lines need, in first-use order; the generic item if none."""
    keys = [item_key(line.name, line.sku) for line in lines] or [item_key(GENERIC_ITEM_NAME, None)]
    return list(dict.fromkeys(keys))


def _net(line: LineItem) -> Decimal:
    return line.quantity * line.unit_price - line.discount


def _item_line(line: LineItem | None, amount: Decimal, item_id: str, tax_code: str | None,
               fallback_text: str) -> dict[str, Any]:
    text = description((line.description or line.name) if line else fallback_text)
    detail: dict[str, Any] = {"ItemRef": {"value": item_id}}
    quantity = line.quantity if line else Decimal(1)
    price = unit_price_for(amount, quantity)
    if price is None:
        price = amount
        if line is not None and quantity != 1:
            note = f"({tidy(quantity)} × {tidy(line.unit_price)})"
            text = description(f"{text} {note}" if text else note)
        quantity = Decimal(1)
    detail["Qty"] = tidy(quantity)
    detail["UnitPrice"] = tidy(price)
    if tax_code is not None:
        detail["TaxCodeRef"] = {"value": tax_code}
    body: dict[str, Any] = {"DetailType": "SalesItemLineDetail", "Amount": amount}
    if text:
        body["Description"] = text
    body["SalesItemLineDetail"] = detail
    return body


def _tax_code(line: LineItem, taxes: Mapping[str, Tax], mapping: Mapping[str, str]) -> str | None:
    if not line.tax_ids:
        return mapping.get(NO_TAX_KEY)
    ids = sorted(set(line.tax_ids))
    key = "+".join(ids)
    code = mapping.get(key) or (mapping.get(ids[0]) if len(ids) == 1 else None)
    if not code:
        names = " + ".join(taxes[i].name if i in taxes else i for i in ids)
        raise MappingError(f"map the CRM tax {names} on the QuickBooks card")
    return code


def folded_lines(lines: Sequence[LineItem], total: Decimal, item_ids: Mapping[str, str],
                 taxes: Sequence[Tax] = ()) -> list[dict[str, Any]]:
    """US: lines whose amounts sum exactly to `total`, discounts and taxes folded in, all NON."""
    if not lines:
        return [_item_line(None, cents(total), item_ids[item_key(GENERIC_ITEM_NAME, None)],
                           US_NON_TAXABLE, GENERIC_ITEM_NAME)]
    rates = {tax.id: tax.rate_percent for tax in taxes}
    weights = [_net(line) * (1 + sum((rates.get(t, ZERO) for t in set(line.tax_ids)), ZERO) / HUNDRED)
               for line in lines]
    amounts = allocate(total, weights)
    return [_item_line(line, amount, item_ids[item_key(line.name, line.sku)], US_NON_TAXABLE, "")
            for line, amount in zip(lines, amounts, strict=True)]


def coded_lines(lines: Sequence[LineItem], item_ids: Mapping[str, str], taxes: Sequence[Tax],
                mapping: Mapping[str, str], amounts: Sequence[Decimal] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Non-US: net line amounts with mapped tax codes; returns (lines, any line taxed)."""
    by_id = {tax.id: tax for tax in taxes}
    taxed = any(line.tax_ids for line in lines)
    out = []
    for index, line in enumerate(lines):
        amount = amounts[index] if amounts is not None else cents(_net(line))
        code = _tax_code(line, by_id, mapping) if taxed else None
        if taxed and code is None:
            raise MappingError("map \"no tax\" on the QuickBooks card (some lines are untaxed)")
        out.append(_item_line(line, amount, item_ids[item_key(line.name, line.sku)], code, ""))
    return out, taxed


def invoice_body(tenant: str, invoice: Invoice, company: Company, customer_id: str,
                 item_ids: Mapping[str, str]) -> dict[str, Any]:
    """The Invoice body for a create, and (with Id, SyncToken) for a sparse update."""
    body: dict[str, Any] = {"CustomerRef": {"value": customer_id}}
    if company.us:
        body["Line"] = folded_lines(invoice.lines, invoice.total, item_ids, invoice.taxes)
    else:
        if not invoice.lines:
            raise MappingError("the invoice has no lines")
        lines, taxed = coded_lines(invoice.lines, item_ids, invoice.taxes, company.tax_mapping or {})
        if invoice.discount_total:
            lines.append({"DetailType": "DiscountLineDetail", "Amount": cents(invoice.discount_total),
                          "DiscountLineDetail": {"PercentBased": False}})
        body["Line"] = lines
        body["GlobalTaxCalculation"] = "TaxExcluded" if taxed else "NotApplicable"
        body["ApplyTaxAfterDiscount"] = True
    body["TxnDate"] = invoice.issue_date.isoformat()
    if invoice.due_date is not None:
        body["DueDate"] = invoice.due_date.isoformat()
    email = valid_email(invoice.billing_email)
    if email:
        body["BillEmail"] = {"Address": email}
    if company.multicurrency:
        body["CurrencyRef"] = {"value": invoice.currency}
    body["PrivateNote"] = crm_marker(tenant, invoice.id)
    return apply_invoice_number(body, invoice.number, company.field_mapping, company.custom_txn_numbers)


def currency_problem(currency: str, company: Company) -> str | None:
    """Why a record in `currency` cannot be pushed (None when it can)."""
    if currency.upper() == company.home_currency.upper() or company.multicurrency:
        return None
    return (f"the record is in {currency.upper()} but the QuickBooks company's home currency is "
            f"{company.home_currency.upper()} and multicurrency is off: turn on multicurrency in "
            "QuickBooks (Settings → Account and settings → Advanced → Currency) or use "
            f"{company.home_currency.upper()} in the CRM, then retry")
