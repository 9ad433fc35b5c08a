"""Pure comparison of one location's CRM records with its QuickBooks company (or its Xero
organisation, read into the same shape by xero_sides.py).

Takes what both sides hold (CRM records, the plugin's links, QBO entities by Id) and returns every
difference a bookkeeper would care about: records missing on either side, totals, amounts paid,
void/deleted status, customer emails, and duplicate customers in QuickBooks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_qbo_plugin.automations.policy import is_void
from crm_qbo_plugin.host import Contact, Invoice, InvoiceStatus, Origin, Payment, PaymentSource
from crm_qbo_plugin.store.tables import Link

QboById = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Difference:
    kind: str
    # missing_in_qbo | missing_in_crm | not_synced | total | amount_paid | status | email | duplicate
    # | local_change (a known one: an imported invoice edited, voided or deleted in the CRM only)
    problem: str
    crm_id: str | None = None
    qbo_id: str | None = None
    crm_value: str | None = None
    qbo_value: str | None = None
    note: str | None = None  # why, when the plugin knows (e.g. held while QuickBooks was disconnected)

    def describe(self, books: str = "QuickBooks") -> str:
        who = " / ".join(part for part in (f"CRM {self.crm_id}" if self.crm_id else "",
                                           f"{books} {self.qbo_id}" if self.qbo_id else "") if part)
        if self.problem == "local_change":
            return f"{self.kind} {who}: {self.note or f'{self.crm_value} in the CRM only'}"
        values = f": CRM {self.crm_value!s} vs {books} {self.qbo_value!s}" if (self.crm_value or self.qbo_value) else ""
        why = f" — {self.note}" if self.note else ""
        problem = self.problem.replace("_in_qbo", f"_in_{books}").replace("_", " ")
        return f"{self.kind} {who}: {problem}{values}{why}"


@dataclass(frozen=True)
class Sides:
    connected_at: datetime | None
    import_invoices: bool
    contacts: Mapping[str, Contact]
    invoices: Mapping[str, Invoice]
    payments: Mapping[str, Payment]
    links: Iterable[Link]
    customers: QboById
    qbo_invoices: QboById
    receipts: QboById
    qbo_payments: QboById


@dataclass
class Result:
    differences: list[Difference] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=dict)
    # Differences the product makes on purpose and shows on the card: CRM-only changes to invoices
    # QuickBooks owns. Listed, but they do not make the books "not match".
    known: list[Difference] = field(default_factory=list)


def _money(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal("0")


def _cents(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _after_cutoff(sides: Sides, when: datetime | None) -> bool:
    return sides.connected_at is None or (when is not None and when >= sides.connected_at)


def compare(sides: Sides) -> Result:
    result = Result()
    links: dict[str, dict[str, Link]] = defaultdict(dict)
    for link in sides.links:
        if link.status != "ignored":
            links[link.kind][link.crm_id] = link
    _contacts(sides, links["contact"], result)
    _invoices(sides, links["invoice"], result)
    _payments(sides, links["sales_receipt"], links["payment"], result)
    return result


def _contacts(sides: Sides, links: Mapping[str, Link], result: Result) -> None:
    add = result.differences.append
    linked_qbo = set()
    for crm_id, link in links.items():
        linked_qbo.add(link.qbo_id)
        customer = sides.customers.get(str(link.qbo_id))
        contact = sides.contacts.get(crm_id)
        if customer is None:
            add(Difference("contact", "missing_in_qbo", crm_id, link.qbo_id))
        elif contact is None:
            add(Difference("contact", "missing_in_crm", crm_id, link.qbo_id))
        else:
            qbo_email = str((customer.get("PrimaryEmailAddr") or {}).get("Address") or "")
            if contact.email and qbo_email and contact.email.strip().casefold() != qbo_email.strip().casefold():
                add(Difference("contact", "email", crm_id, link.qbo_id, contact.email, qbo_email))
    by_email: dict[str, list[str]] = defaultdict(list)
    for qbo_id, customer in sides.customers.items():
        if customer.get("Active") is False:
            continue
        if qbo_id not in linked_qbo:
            add(Difference("customer", "missing_in_crm", None, qbo_id, None, str(customer.get("DisplayName"))))
        email = str((customer.get("PrimaryEmailAddr") or {}).get("Address") or "").strip().casefold()
        if email:
            by_email[email].append(qbo_id)
    for ids in by_email.values():
        if len(ids) > 1:
            add(Difference("customer", "duplicate", None, ", ".join(sorted(ids, key=lambda i: (len(i), i)))))
    result.compared["contacts"] = len(links)


def _invoices(sides: Sides, links: Mapping[str, Link], result: Result) -> None:
    add = result.differences.append
    for crm_id, link in links.items():
        invoice, qbo = sides.invoices.get(crm_id), sides.qbo_invoices.get(str(link.qbo_id))
        if link.status == "crm_only":
            change = str((link.detail or {}).get("local_change") or "edited")
            result.known.append(Difference("invoice", "local_change", crm_id, link.qbo_id, change, None, link.last_error))
            continue
        if link.status == "not_synced" and not link.qbo_id:
            add(Difference("invoice", "not_synced", crm_id, None, None, None, link.last_error))
            continue
        crm_deleted = invoice is None or invoice.status is InvoiceStatus.DELETED
        if link.status == "deleted" or invoice is None or crm_deleted:
            if qbo is not None and not is_void(qbo):
                add(Difference("invoice", "status", crm_id, link.qbo_id, "deleted", "open in QuickBooks"))
            elif link.status == "deleted" and not crm_deleted and invoice is not None:
                add(Difference("invoice", "status", crm_id, link.qbo_id, invoice.status.value, "deleted"))
            continue
        if qbo is None:
            add(Difference("invoice", "missing_in_qbo", crm_id, link.qbo_id))
            continue
        crm_void, qbo_void = invoice.status is InvoiceStatus.VOID, is_void(qbo)
        if crm_void != qbo_void:
            add(Difference("invoice", "status", crm_id, link.qbo_id, invoice.status.value, "void" if qbo_void else "open"))
            continue
        if crm_void:
            continue
        total, balance = _money(qbo.get("TotalAmt")), _money(qbo.get("Balance"))
        if invoice.total != total:
            add(Difference("invoice", "total", crm_id, link.qbo_id, _cents(invoice.total), _cents(total)))
        if invoice.amount_paid != total - balance:
            add(Difference("invoice", "amount_paid", crm_id, link.qbo_id, _cents(invoice.amount_paid), _cents(total - balance)))
    for crm_id, invoice in sides.invoices.items():
        # voided before it reached QuickBooks: the push skips it on purpose (nothing is owed)
        pushable = (invoice.origin is Origin.CRM
                    and invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.DELETED, InvoiceStatus.VOID)
                    and _after_cutoff(sides, invoice.sent_at))
        if pushable and crm_id not in links:
            add(Difference("invoice", "not_synced", crm_id))
    if sides.import_invoices:
        linked = {str(link.qbo_id) for link in links.values()}
        for qbo_id, qbo in sides.qbo_invoices.items():
            if qbo_id not in linked and not is_void(qbo):
                add(Difference("invoice", "missing_in_crm", None, qbo_id, None, str(qbo.get("DocNumber") or "")))
    result.compared["invoices"] = len(links)


def _payments(sides: Sides, receipt_links: Mapping[str, Link], payment_links: Mapping[str, Link], result: Result) -> None:
    add = result.differences.append
    for crm_id, payment in sides.payments.items():
        if payment.origin is not Origin.CRM or not _after_cutoff(sides, payment.paid_at):
            continue
        against_invoice = payment.source is PaymentSource.INVOICE
        kind, links, qbo_side = (("payment", payment_links, sides.qbo_payments) if against_invoice
                                 else ("sales_receipt", receipt_links, sides.receipts))
        link = links.get(crm_id)
        if link is None or (link.status == "not_synced" and not link.qbo_id):
            add(Difference(kind, "not_synced", crm_id, note=link.last_error if link is not None else None))
            continue
        qbo = qbo_side.get(str(link.qbo_id))
        if qbo is None:
            add(Difference(kind, "missing_in_qbo", crm_id, link.qbo_id))
        elif _money(qbo.get("TotalAmt")) != payment.amount and not is_void(qbo):
            add(Difference(kind, "total", crm_id, link.qbo_id, _cents(payment.amount), _cents(_money(qbo.get("TotalAmt")))))
    result.compared["sales_receipts"] = len(receipt_links)
    result.compared["payments"] = len(payment_links)
