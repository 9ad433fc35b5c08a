"""Apply a Xero contact or ACCREC invoice to the CRM: the Applier (inbound/apply.py) with Xero's
record shapes. Every rule is the Applier's — version skip, echo of our own write through the write
ledger, e-mail match before a new contact, an imported invoice rewritten whole, a CRM-made invoice
taking only the payment state, the automation hooks — only the reading of a record differs.

A Xero record's version is its `UpdatedDateUTC` in milliseconds (mapping/xero_record.py), the
`SyncToken` the link book and the ledger compare. Payments arrive as invoice updates: a payment
made in Xero (not one the plugin pushed) fires `payment_received_in_qbo` like a QuickBooks one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any

from crm_qbo_plugin.automations import hooks
from crm_qbo_plugin.host import Contact, Invoice, InvoiceStatus, get_invoices
from crm_qbo_plugin.inbound.apply import INVOICE as INVOICE_KIND
from crm_qbo_plugin.inbound.apply import Applier, Outcome, Target, skipped
from crm_qbo_plugin.mapping.names import contact_name_candidates, valid_email
from crm_qbo_plugin.mapping.xero_contact import contact_from_xero
from crm_qbo_plugin.mapping.xero_imported_invoice import (
    ACCREC,
    amount_paid,
    invoice_from_xero,
    invoice_status,
    money,
)
from crm_qbo_plugin.mapping.xero_invoice import invoice_number
from crm_qbo_plugin.mapping.xero_payment import SALE_PREFIX
from crm_qbo_plugin.mapping.xero_record import as_written
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import claims
from crm_qbo_plugin.store.links import PAYMENT, SALES_RECEIPT, link_by_qbo_id, unfinished_pushes
from crm_qbo_plugin.xero import MAX_ELEMENTS, NotFoundError, XeroClient

CONTACT_ENTITY, INVOICE_ENTITY = "XeroContact", "XeroInvoice"


class XeroApplier(Applier):
    """Applies Xero contacts and invoices for one tenant (see Applier for batching and flushing)."""

    CUSTOMER, INVOICE = CONTACT_ENTITY, INVOICE_ENTITY

    def __init__(self, state: Services, target: Target, xero: XeroClient, *,
                 defer_host_writes: bool = False) -> None:
        super().__init__(state, target, None, defer_host_writes=defer_host_writes)
        self.xero = xero
        self._pushing: set[str] | None = None  # the numbers of CRM invoices whose push is unfinished
        self._payments: dict[str, Mapping[str, Any]] = {}  # payments made in Xero, read for their page

    # ------------------------------------------------------------------ entry points

    def preload_records(self, entity: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The records as the link book reads them, with what they need preloaded."""
        bodies = [as_written(entity, r) for r in records]
        self.preload(entity, bodies)
        if entity == INVOICE_ENTITY:
            self.book.preload(SALES_RECEIPT, [b["Id"] for b in bodies])
            self._read_payments([r for r in records if r.get("Type") == ACCREC])
        return bodies

    def apply_contact(self, record: Mapping[str, Any], *, importing: bool = False) -> Outcome:
        """A Xero contact; `importing` takes archived ones too (as QuickBooks' import does)."""
        return self.apply_customer(as_written(CONTACT_ENTITY, record), for_invoice=importing)

    def apply_xero_invoice(self, record: Mapping[str, Any]) -> Outcome:
        if record.get("Type") != ACCREC:
            return skipped("a bill (ACCPAY) is not a CRM invoice")
        body = as_written(INVOICE_ENTITY, record)
        if str(record.get("InvoiceNumber") or "").startswith(SALE_PREFIX) \
                or self.book.by_qbo(SALES_RECEIPT, body["Id"]) is not None:
            return skipped("the sale a CRM payment without an invoice became in Xero")
        if record.get("Status") == "DELETED" and self.book.by_qbo(INVOICE_KIND, body["Id"]) is None:
            return skipped("deleted in Xero before the CRM knew it")
        outcome = self.apply_invoice(body)
        if self.connection is not None:
            self._payments_made_in_xero(body)
        return outcome

    def _payments_made_in_xero(self, invoice: Mapping[str, Any]) -> None:
        """Fire `payment_received_in_qbo` once per payment on the invoice the plugin did not push."""
        connection = self.connection
        contact = self._linked_contact(self._contact_ref(invoice))
        if connection is None or contact is None:
            return
        for payment_id in self._unannounced(invoice):
            payment = self._payments.pop(payment_id, None)
            if payment is None:
                try:
                    payment = self.xero.get_payment(payment_id)
                except NotFoundError:
                    continue
            self._after_write(partial(hooks.after_payment_applied, self.state, connection, payment, contact))

    def _unannounced(self, invoice: Mapping[str, Any]) -> list[str]:
        """The ids of the invoice's payments made in Xero (not pushed by the plugin) whose
        `payment_received_in_qbo` has not fired."""
        found = []
        for entry in invoice.get("Payments") or []:
            payment_id = str(entry.get("PaymentID") or "") if isinstance(entry, Mapping) else ""
            if not payment_id or claims.fired(self.state.engine, self.tenant, "payment_received_in_qbo",
                                               f"payment:{payment_id}"):
                continue
            if link_by_qbo_id(self.state, self.tenant, PAYMENT, payment_id) is None:  # else a CRM payment we pushed
                found.append(payment_id)
        return found

    def _read_payments(self, invoices: Sequence[Mapping[str, Any]]) -> None:
        """Read the payments made in Xero that a page of invoices brings, 50 to a GET, for the
        automation (it needs each one's time and amount; the invoice lists only their dates):
        a bank feed reconciled in Xero then costs a few calls of Xero's 60 a minute, not one a
        payment. One the list leaves out is read by its id when its invoice is applied."""
        if self.connection is None:
            return
        wanted = [p for invoice in invoices for p in self._unannounced(invoice) if _is_guid(p)]
        for start in range(0, len(wanted), MAX_ELEMENTS):
            for payment in self.xero.payments_by_id(wanted[start:start + MAX_ELEMENTS]):
                self._payments[str(payment.get("PaymentID"))] = payment

    # ------------------------------------------------------------------ Xero's record shapes

    def _contact_of(self, body: Mapping[str, Any], crm_id: str) -> Contact:
        return contact_from_xero(body, crm_id)

    def _contact_update(self, body: Mapping[str, Any], crm_id: str, current: Contact | None) -> Contact:
        """Xero has one Name and no company field: a Name the plugin would give the CRM contact
        (its name, or that name made unique) says nothing new, so the CRM keeps its company and,
        where Xero has none, its first and last name. Any other Name is read as contact_from_xero
        reads it."""
        contact = contact_from_xero(body, crm_id)
        if current is None or str(body.get("Name") or "").strip() not in contact_name_candidates(self.tenant, current):
            return contact
        has_names = bool(body.get("FirstName") or body.get("LastName"))
        return replace(contact, company_name=current.company_name,
                       first_name=contact.first_name if has_names else current.first_name,
                       last_name=contact.last_name if has_names else current.last_name)

    def _email_of(self, body: Mapping[str, Any]) -> str | None:
        raw = body.get("EmailAddress")
        return valid_email(raw.strip()) if isinstance(raw, str) else None

    def _active(self, body: Mapping[str, Any]) -> bool:
        return body.get("ContactStatus", "ACTIVE") == "ACTIVE"

    def _contact_ref(self, body: Mapping[str, Any]) -> str | None:
        contact = body.get("Contact")
        value = contact.get("ContactID") if isinstance(contact, Mapping) else None
        return str(value) if value else None

    def _read_customer(self, customer_id: str) -> Mapping[str, Any]:
        return as_written(CONTACT_ENTITY, self.xero.get_contact(customer_id))

    def _invoice_of(self, body: Mapping[str, Any], crm_id: str, contact_id: str) -> Invoice:
        return invoice_from_xero(body, crm_id, contact_id)

    def _payment_state_of(self, body: Mapping[str, Any]) -> tuple[InvoiceStatus, Decimal]:
        return invoice_status(body), amount_paid(body)

    def _made_for_crm(self, body: Mapping[str, Any]) -> bool:
        """The plugin's Xero invoices carry the CRM's number (no marker): an unlinked one numbered
        as a CRM invoice whose push has not recorded its link is that push's (a worker died after
        Xero answered); its retry finds it by the number and links it (outbound/xero_invoices.py)."""
        number = str(body.get("InvoiceNumber") or "")
        if not number:
            return False
        if self._pushing is None:  # read once per applier: few, unless pushes keep failing
            crm_ids = unfinished_pushes(self.state, self.tenant, INVOICE_KIND)
            self._pushing = {invoice_number(i) for i in get_invoices(self.host, self.tenant, crm_ids).values()}
        return number in self._pushing

    def _total_of(self, body: Mapping[str, Any]) -> Decimal:
        return money(body.get("Total"))


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
