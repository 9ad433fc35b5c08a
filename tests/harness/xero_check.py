"""The soak's end check for a Xero tenant: the organisation's books against the CRM's and against
what the workload did, read directly from Xero (beside `crm-qbo reconcile`, which compares the
organisation with the CRM record by record; see soak.py).

Counted (more is a duplicate, fewer is a lost record): the CRM's contacts and invoices; Xero's
active contacts (the CRM contacts with a sent invoice or a payment), its sales invoices (the CRM
invoices that reached it, VOIDED ones included), the sales a CRM payment without an invoice becomes
(`CRM-SALE-…`) and its payments. Compared record by record through the plugin's links: each CRM
invoice's number, total, amount paid and status (void ↔ VOIDED, paid ↔ PAID; a voided one's number
and status only: a void has no amounts in the books), each CRM payment's
amount and invoice, each sale's total and PAID status, each contact's e-mail, and no InvoiceNumber
twice. What was read from Xero is returned too (the soak writes it beside its logs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crm_qbo_plugin.store.tables import Link
from tests.harness.stack import Stack
from tests.harness.workload import Crm, Invoice, Tenant
from tests.harness.xero_user import XeroUser

SALE_PREFIX = "CRM-SALE-"
GONE = ("deleted", "void")  # CRM invoice statuses Xero shows as VOIDED


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def xero_expected(tenant: Tenant, pushed: Callable[[Invoice], bool], in_xero: Callable[[Invoice], bool]) -> dict[str, int]:
    live = [i for i in tenant.invoices if i.state != "deleted"]
    kept = [i for i in tenant.invoices if i.state == "deleted" and in_xero(i)]  # voided in Xero, never deleted
    return {
        "contacts": len(tenant.contacts),
        "xero_contacts": len(tenant.billable(pushed)),
        "crm_invoices": len(live),
        "xero_invoices": len([i for i in live if pushed(i)]) + len(kept),
        "xero_sales": tenant.crm_receipts,
        "xero_payments": tenant.crm_invoice_payments + tenant.qbo_payments + tenant.crm_receipts,
        "crm_payments": tenant.crm_invoice_payments + tenant.crm_receipts,
    }


def check_xero_tenant(st: Stack, tenant: Tenant, crm: Crm, xero: XeroUser) -> tuple[
        dict[str, int], list[str], dict[str, Any]]:
    """What each side holds (the keys of `xero_expected`), every record-level difference, and
    what was read from Xero."""
    contacts, crm_invoices, crm_payments = crm.call("GET", "/contacts"), crm.call("GET", "/invoices"), crm.call("GET", "/payments")
    xero_contacts = xero.all("Contacts")
    invoices = [i for i in xero.all("Invoices") if i["Type"] == "ACCREC" and i["Status"] != "DELETED"]
    payments = [p for p in xero.all("Payments") if p.get("Status") != "DELETED"]
    sales = [i for i in invoices if str(i.get("InvoiceNumber") or "").startswith(SALE_PREFIX)]
    actual = {
        "contacts": len(contacts), "xero_contacts": len(xero_contacts), "crm_invoices": len(crm_invoices),
        "xero_invoices": len(invoices) - len(sales), "xero_sales": len(sales), "xero_payments": len(payments),
        "crm_payments": len(crm_payments),
    }
    where = tenant.location
    differences = [f"{where}: Xero holds InvoiceNumber {n} {c} times" for n, c in
                   Counter(str(i.get("InvoiceNumber")) for i in invoices).items() if c > 1]
    links = Link.__table__  # type: ignore[attr-defined]
    with st.engine.connect() as conn:
        linked = {(r.kind, r.crm_id): r.qbo_id for r in conn.execute(
            sa.select(links).where(links.c.tenant_id == tenant.location, links.c.qbo_id.is_not(None)))}
    by_id = {str(i["InvoiceID"]): i for i in invoices}
    for invoice in crm_invoices:
        xero_id = linked.get(("invoice", invoice["id"]))
        if xero_id is None:
            continue  # counted above: one that had to reach Xero and did not is a lost record
        found = by_id.get(str(xero_id))
        if found is None:
            differences.append(f"{where}: CRM invoice {invoice['number']} is linked to Xero {xero_id}, which is gone")
            continue
        want_status = "VOIDED" if invoice["status"] in GONE else "PAID" if invoice["status"] == "paid" else "AUTHORISED"
        theirs = (found.get("InvoiceNumber"), _money(found["Total"]), _money(found["AmountPaid"]), found["Status"])
        ours = (invoice["number"], _money(invoice["total"]), _money(invoice["amount_paid"]), want_status)
        if want_status == "VOIDED":  # a void has no amounts in the books, and Xero can edit none: an edit
            theirs, ours = theirs[::3], ours[::3]  # the void overtook (held, then voided) is moot — number, status
        if theirs != ours:
            differences.append(f"{where}: CRM invoice (number, total, paid, status) {ours} but Xero has {theirs}")
    paid_in_xero = {str(p["PaymentID"]): p for p in payments}
    crm_invoice_links = {crm_id: xero_id for (kind, crm_id), xero_id in linked.items() if kind == "invoice"}
    for payment in crm_payments:
        amount = _money(payment["amount"])
        if payment.get("invoice_id"):
            xero_id = linked.get(("payment", payment["id"]))
            found = paid_in_xero.get(str(xero_id)) if xero_id else None
            want_invoice = crm_invoice_links.get(payment["invoice_id"])
            if found is None:
                differences.append(f"{where}: CRM payment {payment['id']} ({amount}) is in Xero as {xero_id}, which is not there")
            elif (_money(found["Amount"]), str(found["Invoice"]["InvoiceID"])) != (amount, str(want_invoice)):
                differences.append(f"{where}: CRM payment {payment['id']} is {amount} on {want_invoice} but Xero's is "
                                   f"{found['Amount']} on {found['Invoice']['InvoiceID']}")
        else:
            xero_id = linked.get(("sales_receipt", payment["id"]))
            sale = by_id.get(str(xero_id)) if xero_id else None
            if sale is None or (_money(sale["Total"]), sale["Status"]) != (amount, "PAID"):
                differences.append(f"{where}: CRM payment {payment['id']} without an invoice ({amount}) is in Xero as "
                                   f"{None if sale is None else (sale['InvoiceNumber'], sale['Total'], sale['Status'])}")
    emails = {str(c.get("EmailAddress") or "").lower() for c in xero_contacts}
    for contact in contacts:
        if ("contact", contact["id"]) in linked and (contact.get("email") or "").lower() not in emails:
            differences.append(f"{where}: contact {contact['id']}'s e-mail is on no Xero contact")
    return actual, differences, {"contacts": xero_contacts, "invoices": invoices, "payments": payments}
