"""An in-memory CrmHost: the smallest honest host, for tests that do not need the reference CRM."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

from crm_qbo_plugin import (
    Contact,
    HostUser,
    Invoice,
    InvoiceStatus,
    LocationProfile,
    Origin,
    Payment,
    TriggerCall,
)


class FakeHost:
    def __init__(self) -> None:
        self.contacts: dict[tuple[str, str], Contact] = {}
        self.invoices: dict[tuple[str, str], Invoice] = {}
        self.payments: dict[tuple[str, str], Payment] = {}
        self.triggers: list[TriggerCall] = []
        self._ids = itertools.count(1)
        self.user: HostUser | None = None  # who the next web request is signed in as
        self.profiles: dict[str, LocationProfile] = {}

    def location_profile(self, tenant: str) -> LocationProfile | None:
        return self.profiles.get(tenant, LocationProfile(currency="USD"))

    def current_user(self) -> HostUser | None:
        return self.user

    def get_contact(self, tenant: str, contact_id: str) -> Contact | None:
        return self.contacts.get((tenant, contact_id))

    def get_invoice(self, tenant: str, invoice_id: str) -> Invoice | None:
        return self.invoices.get((tenant, invoice_id))

    def get_payment(self, tenant: str, payment_id: str) -> Payment | None:
        return self.payments.get((tenant, payment_id))

    def find_contact_by_email(self, tenant: str, email: str) -> Contact | None:
        wanted = email.casefold()
        for (owner, _id), contact in self.contacts.items():
            if owner == tenant and contact.email and contact.email.casefold() == wanted:
                return contact
        return None

    def list_record_ids(self, tenant: str, kind: str) -> list[str]:
        stores: dict[str, dict[tuple[str, str], object]] = {
            "contact": dict(self.contacts), "invoice": dict(self.invoices), "payment": dict(self.payments)}
        return [record_id for (owner, record_id) in stores[kind] if owner == tenant]

    def upsert_contact(self, tenant: str, contact: Contact, origin: Origin) -> str:
        contact_id = contact.id or f"c{next(self._ids)}"
        self.contacts[(tenant, contact_id)] = replace(contact, id=contact_id, origin=origin)
        return contact_id

    def upsert_invoice(self, tenant: str, invoice: Invoice, origin: Origin) -> str:
        invoice_id = invoice.id or f"i{next(self._ids)}"
        self.invoices[(tenant, invoice_id)] = replace(invoice, id=invoice_id, origin=origin)
        return invoice_id

    def update_invoice_status(self, tenant: str, invoice_id: str, status: InvoiceStatus, amount_paid: Decimal) -> None:
        invoice = self.invoices[(tenant, invoice_id)]
        self.invoices[(tenant, invoice_id)] = replace(invoice, status=status, amount_paid=amount_paid)

    def fire_trigger(self, call: TriggerCall) -> None:
        if any(t.idempotency_key == call.idempotency_key for t in self.triggers):
            return
        self.triggers.append(call)
