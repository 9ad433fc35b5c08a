"""CRM payment (order form, subscription renewal, membership checkout, calendar booking) → QBO
SalesReceipt body.

The receipt must total exactly what was paid. US: the lines are folded to the paid amount (see
mapping/invoice.py). Other regions: the paid amount is split over the lines the same way and the
lines carry their mapped tax codes as tax-inclusive amounts, so QBO takes the tax out of the paid
figure instead of adding it on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_qbo_plugin.host import Payment
from crm_qbo_plugin.mapping.invoice import Company, coded_lines, crm_marker, folded_lines
from crm_qbo_plugin.mapping.money import allocate, cents
from crm_qbo_plugin.mapping.names import clean_text

MAX_PAYMENT_REF = 21


def sales_receipt_body(tenant: str, payment: Payment, company: Company, customer_id: str,
                       item_ids: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"CustomerRef": {"value": customer_id}}
    if company.us or not payment.lines:
        body["Line"] = folded_lines(payment.lines, payment.amount, item_ids)
    else:
        amounts = allocate(cents(payment.amount), [line.quantity * line.unit_price - line.discount
                                                   for line in payment.lines])
        lines, taxed = coded_lines(payment.lines, item_ids, (), company.tax_mapping or {}, amounts)
        body["Line"] = lines
        body["GlobalTaxCalculation"] = "TaxInclusive" if taxed else "NotApplicable"
    body["TxnDate"] = payment.paid_at.date().isoformat()
    reference = clean_text(payment.reference)[:MAX_PAYMENT_REF]
    if reference:
        body["PaymentRefNum"] = reference
    if company.multicurrency:
        body["CurrencyRef"] = {"value": payment.currency}
    body["PrivateNote"] = crm_marker(tenant, payment.id)
    return body
