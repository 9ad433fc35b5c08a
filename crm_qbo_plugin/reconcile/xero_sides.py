"""A Xero organisation's records in the shape `compare` reads (QuickBooks' field names), so one
comparison proves either provider's books: contacts as customers, ACCREC invoices (the sales a
CRM payment without an invoice became are the "sales receipts"), and payments.

A voided or deleted invoice or payment reads as QuickBooks shows a void: a zero total and a
"Voided" note (see automations/policy.is_void). Xero's amount paid is Total − AmountDue (a credit
note allocated to the invoice counts as paid, as QuickBooks' balance would show it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.mapping.xero_imported_invoice import money
from crm_qbo_plugin.mapping.xero_payment import SALE_PREFIX
from crm_qbo_plugin.runtime.clients import xero_client_for
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.links import SALES_RECEIPT
from crm_qbo_plugin.store.tables import Link

EVER = datetime(2000, 1, 1, tzinfo=UTC)
GONE = ("VOIDED", "DELETED")
ZERO = Decimal("0")
PAGE_SIZE = 1000  # Xero's largest page


def _void(record: Mapping[str, Any]) -> bool:
    return record.get("Status") in GONE


def customer(contact: Mapping[str, Any]) -> dict[str, Any]:
    return {"Id": str(contact["ContactID"]), "Active": contact.get("ContactStatus", "ACTIVE") == "ACTIVE",
            "DisplayName": contact.get("Name"), "PrimaryEmailAddr": {"Address": contact.get("EmailAddress") or ""}}


def invoice(record: Mapping[str, Any]) -> dict[str, Any]:
    void = _void(record)
    total = ZERO if void else money(record.get("Total"))
    return {"Id": str(record["InvoiceID"]), "DocNumber": record.get("InvoiceNumber"), "TotalAmt": total,
            "Balance": ZERO if void else money(record.get("AmountDue")), "PrivateNote": "Voided" if void else ""}


def payment(record: Mapping[str, Any]) -> dict[str, Any]:
    void = _void(record)
    return {"Id": str(record["PaymentID"]), "TotalAmt": ZERO if void else money(record.get("Amount")),
            "PrivateNote": "Voided" if void else ""}


def _all(pages: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [row for page in pages for row in page]


def xero_books(state: Services, org: str, links: Iterable[Link]) -> tuple[dict[str, dict[str, Any]], ...]:
    """(customers, invoices, sales receipts, payments) of the organisation, by id."""
    sales = {str(link.qbo_id) for link in links if link.kind == SALES_RECEIPT and link.qbo_id}
    with closing(xero_client_for(state, org)) as xero:
        contacts = _all(xero.changed("Contacts", EVER, page_size=PAGE_SIZE))
        invoices = _all(xero.changed("Invoices", EVER, page_size=PAGE_SIZE, where='Type=="ACCREC"'))
        payments = _all(xero.changed("Payments", EVER, page_size=PAGE_SIZE))
    by_id = {str(c["ContactID"]): customer(c) for c in contacts}
    sale = {str(i["InvoiceID"]) for i in invoices
            if str(i["InvoiceID"]) in sales or str(i.get("InvoiceNumber") or "").startswith(SALE_PREFIX)}
    receipts = {str(i["InvoiceID"]): invoice(i) for i in invoices if str(i["InvoiceID"]) in sale}
    sold = {str(i["InvoiceID"]): invoice(i) for i in invoices
            if str(i["InvoiceID"]) not in sale and i.get("Status") != "DELETED"}
    paid = {str(p["PaymentID"]): payment(p) for p in payments}
    return by_id, sold, receipts, paid
