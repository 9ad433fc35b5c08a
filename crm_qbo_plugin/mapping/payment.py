"""CRM payment against an invoice → QBO Payment body, linked to the QBO invoice (LinkedTxn)."""

from __future__ import annotations

from typing import Any

from crm_qbo_plugin.host import Payment
from crm_qbo_plugin.mapping.invoice import Company, crm_marker
from crm_qbo_plugin.mapping.money import cents
from crm_qbo_plugin.mapping.names import clean_text
from crm_qbo_plugin.mapping.sales_receipt import MAX_PAYMENT_REF


def payment_body(tenant: str, payment: Payment, company: Company, customer_id: str,
                 invoice_qbo_id: str) -> dict[str, Any]:
    amount = cents(payment.amount)
    body: dict[str, Any] = {
        "TotalAmt": amount,
        "CustomerRef": {"value": customer_id},
        "TxnDate": payment.paid_at.date().isoformat(),
        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_qbo_id, "TxnType": "Invoice"}]}],
    }
    reference = clean_text(payment.reference)[:MAX_PAYMENT_REF]
    if reference:
        body["PaymentRefNum"] = reference
    if company.multicurrency:
        body["CurrencyRef"] = {"value": payment.currency}
    body["PrivateNote"] = crm_marker(tenant, payment.id)
    return body
