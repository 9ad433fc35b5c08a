"""What the automation triggers need to know about a record of the books, read from QuickBooks' or
Xero's shape: the one place where hooks and the overdue pass tell the two apart.

Payload keys stay `qbo_*` for both (the host's trigger contract predates Xero).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.automations.policy import first_invoice, paid_in_full
from crm_qbo_plugin.mapping.xero_payment import SALE_PREFIX
from crm_qbo_plugin.qbo import parse_timestamp as qbo_timestamp
from crm_qbo_plugin.xero import parse_timestamp as xero_timestamp

ZERO = Decimal("0")
XERO_CLOSED = ("DRAFT", "SUBMITTED", "VOIDED", "DELETED")  # not (or no longer) an invoice anyone owes


def _amount(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else ZERO


def _xero_time(body: Mapping[str, Any]) -> datetime | None:
    raw = body.get("UpdatedDateUTC")
    return xero_timestamp(raw) if isinstance(raw, str) and raw else None


def _qbo_time(body: Mapping[str, Any], field: str) -> datetime | None:
    value = (body.get("MetaData") or {}).get(field)
    return qbo_timestamp(str(value)) if value else None


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    number: str | None
    total: Decimal
    currency: str | None
    paid_in_full: bool
    updated: datetime | None
    contact_ref: str  # the books' id of its customer

    def summary(self) -> dict[str, Any]:
        return {"qbo_invoice_id": self.id, "doc_number": self.number, "total": str(self.total),
                "currency": self.currency}


def invoice_facts(provider: str, invoice: Mapping[str, Any]) -> InvoiceFacts:
    if provider == "xero":
        return InvoiceFacts(
            id=str(invoice.get("InvoiceID")), number=str(invoice.get("InvoiceNumber") or "") or None,
            total=_amount(invoice.get("Total")), currency=invoice.get("CurrencyCode"),
            paid_in_full=xero_paid_in_full(invoice), updated=_xero_time(invoice),
            contact_ref=str((invoice.get("Contact") or {}).get("ContactID") or ""))
    return InvoiceFacts(
        id=str(invoice.get("Id")), number=invoice.get("DocNumber"), total=_amount(invoice.get("TotalAmt")),
        currency=(invoice.get("CurrencyRef") or {}).get("value"), paid_in_full=paid_in_full(invoice),
        updated=_qbo_time(invoice, "LastUpdatedTime"),
        contact_ref=str((invoice.get("CustomerRef") or {}).get("value") or ""))


def xero_paid_in_full(invoice: Mapping[str, Any]) -> bool:
    """PAID with a positive total because payments were applied (a credit note alone is no payment)."""
    return (invoice.get("Status") == "PAID" and _amount(invoice.get("Total")) > ZERO
            and _amount(invoice.get("AmountPaid")) > ZERO)


def _xero_order_key(invoice: Mapping[str, Any]) -> tuple[str, str, str]:
    # Xero keeps no creation time: the invoice date, then its number, then its id
    return (str(invoice.get("Date") or ""), str(invoice.get("InvoiceNumber") or ""), str(invoice.get("InvoiceID")))


def first_invoice_id(provider: str, invoices: Iterable[Mapping[str, Any]]) -> str | None:
    """The id of a customer's first invoice (earliest non-void, whichever side made it). In Xero,
    the paid sale a CRM payment without an invoice became is no invoice (QuickBooks' sales receipt)."""
    if provider == "xero":
        candidates = [i for i in invoices if i.get("Type") == "ACCREC" and i.get("Status") not in XERO_CLOSED
                      and not str(i.get("InvoiceNumber") or "").startswith(SALE_PREFIX)]  # QuickBooks' sales receipts
        return str(min(candidates, key=_xero_order_key).get("InvoiceID")) if candidates else None
    first = first_invoice(invoices)
    return str(first.get("Id")) if first is not None else None


@dataclass(frozen=True)
class RecordFacts:
    """A customer or payment: its id, when it came to be, and what the trigger's payload says."""

    id: str
    created: datetime | None
    payload: dict[str, Any]


def customer_facts(provider: str, customer: Mapping[str, Any]) -> RecordFacts:
    if provider == "xero":  # no creation time in Xero: its first version is when the plugin meets it
        return RecordFacts(str(customer.get("ContactID")), _xero_time(customer),
                           {"qbo_customer_id": str(customer.get("ContactID")), "display_name": customer.get("Name")})
    return RecordFacts(str(customer.get("Id")), _qbo_time(customer, "CreateTime"),
                       {"qbo_customer_id": str(customer.get("Id")), "display_name": customer.get("DisplayName")})


def payment_facts(provider: str, payment: Mapping[str, Any]) -> RecordFacts:
    if provider == "xero":
        return RecordFacts(str(payment.get("PaymentID")), _xero_time(payment),
                           {"qbo_payment_id": str(payment.get("PaymentID")), "amount": str(payment.get("Amount"))})
    return RecordFacts(str(payment.get("Id")), _qbo_time(payment, "CreateTime"),
                       {"qbo_payment_id": str(payment.get("Id")), "amount": str(payment.get("TotalAmt"))})

