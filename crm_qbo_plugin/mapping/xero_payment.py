"""CRM payments → Xero: against an invoice a Payment; without one, a paid sales invoice (pure).

A CRM payment that paid for no invoice (order form, subscription renewal, membership checkout,
calendar booking) becomes an AUTHORISED ACCREC invoice for exactly the amount paid, numbered from
the CRM payment (``sale_number``), and a Payment of the full amount against it — the invoice is then
PAID at once. Why not a receive-money ``BankTransaction`` (Xero's "cash sale"):

* it is how Xero's own sales-channel connections record an online sale (an invoice paid at once),
  and it keeps the sale on the contact's sales history, in the tax report by line and in the
  receivables ledger the reconcile compares, with the same lines, items and tax rates as an invoice;
* it needs only the scopes the invoice sync already asks for (new apps would need the extra
  ``accounting.banktransactions`` scope, xero-api.md §1), and Xero sends INVOICE webhooks for it,
  while bank transactions have none (§7) and would be visible only to the poll;
* every step is provable against the local Xero, which has no BankTransactions endpoint.

The cost is two writes: each carries its own Idempotency-Key, and a retry after the key expired
first reads the invoice by its number (``AmountDue`` 0 means the payment landed), so neither is
doubled. The lines are tax-inclusive (the paid figure includes tax; Xero takes its tax out of it,
so the total is the amount paid whatever the rounding); with NoTax they carry no tax at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.host import Payment
from crm_qbo_plugin.mapping.money import allocate, cents
from crm_qbo_plugin.mapping.names import GENERIC_ITEM_NAME, clean_text, description, item_key
from crm_qbo_plugin.mapping.xero_invoice import (
    MappingError,
    XeroBooks,
    currency_problem,
    priced,
    tax_type,
)

MAX_REFERENCE = 255
SALE_PREFIX = "CRM-SALE-"


def payment_marker(payment_id: str) -> str:
    """What ends the Reference of every Payment the plugin makes: the CRM payment it is. Xero keeps
    no other free text on a payment, and a retry after Xero forgot its Idempotency-Key must know
    its own payment from one a bookkeeper made on the same invoice (same date, same amount)."""
    return f"CRM {clean_text(payment_id)}"[:MAX_REFERENCE]


def payment_reference(reference: str | None, payment_id: str) -> str:
    """The CRM's reference, then the marker: "ORDER-77 · CRM p-9" (the marker is always kept whole)."""
    marker = payment_marker(payment_id)
    mine = clean_text(reference)[:MAX_REFERENCE - len(marker) - 3]
    return f"{mine} · {marker}" if mine else marker


def payment_body(payment: Payment, invoice_id: str, books: XeroBooks) -> dict[str, Any]:
    """A Payment of ``payment.amount`` against the Xero invoice, into the card's bank account."""
    if not books.payment_account:
        raise MappingError("choose the Xero bank account payments go to on the card")
    amount = cents(payment.amount)
    if amount <= 0:
        raise MappingError("Xero records only payments above zero")
    return {
        "Invoice": {"InvoiceID": invoice_id},
        "Account": {"Code": books.payment_account},
        "Date": payment.paid_at.date().isoformat(),
        "Amount": amount,
        "Reference": payment_reference(payment.reference, payment.id),
    }


def sale_number(payment_id: str) -> str:
    """The InvoiceNumber of the sale a CRM payment without an invoice becomes."""
    return f"{SALE_PREFIX}{clean_text(payment_id)}"[:255]


def sale_invoice_body(payment: Payment, books: XeroBooks, contact_id: str,
                      item_codes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The AUTHORISED invoice totalling exactly what was paid (see the module docstring)."""
    problem = currency_problem(payment.currency, books)
    if problem:
        raise MappingError(problem)
    total = cents(payment.amount)
    if total <= 0:
        raise MappingError("Xero records only sales above zero")
    codes = item_codes or {}
    mode = "NoTax" if books.line_amount_types == "NoTax" else "Inclusive"
    lines: list[dict[str, Any]] = []
    if payment.lines:
        weights = [line.quantity * line.unit_price - line.discount for line in payment.lines]
        amounts = allocate(total, weights)
        for line, amount in zip(payment.lines, amounts, strict=True):
            body = priced(line, amount, description(line.description or line.name)
                          or GENERIC_ITEM_NAME)
            code = codes.get(item_key(line.name, line.sku))
            if code:
                body["ItemCode"] = code
            if mode == "Inclusive":
                body["TaxType"] = tax_type(line, books, {})
            lines.append(body)
    else:
        body = priced(None, total, GENERIC_ITEM_NAME)
        if mode == "Inclusive":
            body["TaxType"] = books.tax_mapping.get("none") or "NONE"
        lines.append(body)
    for line_body in lines:
        line_body["AccountCode"] = books.revenue_account
    sale: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "InvoiceNumber": sale_number(payment.id),
        "Date": payment.paid_at.date().isoformat(),
        "DueDate": payment.paid_at.date().isoformat(),
        "Status": "AUTHORISED",
        "LineAmountTypes": mode,
        "CurrencyCode": payment.currency.upper(),
        "LineItems": lines,
    }
    reference = clean_text(payment.reference)[:MAX_REFERENCE]
    if reference:
        sale["Reference"] = reference
    return sale


def sale_total(body: Mapping[str, Any]) -> Decimal:
    """The total Xero will compute for a sale body (Inclusive/NoTax: the sum of the lines)."""
    return sum((cents(Decimal(str(line["Quantity"])) * Decimal(str(line["UnitAmount"])))
                - Decimal(str(line.get("DiscountAmount", 0))) for line in body["LineItems"]),
               Decimal("0"))
