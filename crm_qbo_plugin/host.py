"""The contract between the plugin and the CRM that mounts it.

The CRM implements `CrmHost`; the plugin calls it to read the records named in host events and to
write what comes from QuickBooks. Records cross this boundary as the small frozen dataclasses below,
with money as `Decimal` and times timezone-aware, so mapping code never guesses units or zones.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable


class Origin(enum.StrEnum):
    """Where a record or a change was born; the loop guard's first question."""

    CRM = "crm"
    QBO = "qbo"


class PaymentSource(enum.StrEnum):
    """What a CRM payment paid for; all but INVOICE become QBO sales receipts."""

    ORDER_FORM = "order_form"
    SUBSCRIPTION = "subscription"
    MEMBERSHIP = "membership"
    CALENDAR = "calendar"
    INVOICE = "invoice"


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"
    DELETED = "deleted"


@dataclass(frozen=True)
class Contact:
    id: str
    email: str | None
    first_name: str = ""
    last_name: str = ""
    company_name: str = ""
    phone: str = ""
    origin: Origin = Origin.CRM
    updated_at: datetime | None = None
    active: bool = True


@dataclass(frozen=True)
class LineItem:
    name: str
    quantity: Decimal
    unit_price: Decimal
    description: str = ""
    sku: str | None = None
    discount: Decimal = Decimal("0")
    tax_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tax:
    id: str
    name: str
    rate_percent: Decimal


@dataclass(frozen=True)
class Invoice:
    id: str
    contact_id: str
    number: str | None
    status: InvoiceStatus
    currency: str
    issue_date: date
    due_date: date | None
    lines: tuple[LineItem, ...]
    total: Decimal
    amount_paid: Decimal = Decimal("0")
    billing_email: str | None = None
    discount_total: Decimal = Decimal("0")
    taxes: tuple[Tax, ...] = ()
    origin: Origin = Origin.CRM
    sent_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Payment:
    id: str
    contact_id: str
    source: PaymentSource
    amount: Decimal
    currency: str
    paid_at: datetime
    lines: tuple[LineItem, ...] = ()
    invoice_id: str | None = None
    reference: str = ""
    origin: Origin = Origin.CRM


@dataclass(frozen=True)
class TriggerCall:
    """One automation trigger fired into the host's workflow engine."""

    tenant: str
    trigger: str
    contact_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""


@dataclass(frozen=True)
class LocationProfile:
    """What the card's setup checks against QuickBooks: the location's currency and its taxes."""

    currency: str
    taxes: tuple[Tax, ...] = ()


@dataclass(frozen=True)
class HostUser:
    """The CRM user behind the current web request, and the location (tenant) they act for."""

    id: str
    tenant: str
    name: str = ""


@runtime_checkable
class CrmHost(Protocol):
    """What a CRM implements so the plugin can read and write its records.

    Every method is scoped by tenant (the CRM's location id). Reads return None for a record the
    host no longer has. Upserts carry the origin so the host can tell its own users' edits from
    the plugin's imports (and tell the plugin, in its events, which is which).
    """

    def current_user(self) -> HostUser | None:
        """The signed-in user of the current request (None if nobody is): the plugin's pages and
        API trust only this for the tenant, never a tenant id from the URL or the form."""
        ...

    def location_profile(self, tenant: str) -> LocationProfile | None:
        """The location's selling currency and tax rates (None for an unknown tenant)."""
        ...

    def get_contact(self, tenant: str, contact_id: str) -> Contact | None: ...

    def get_invoice(self, tenant: str, invoice_id: str) -> Invoice | None: ...

    def get_payment(self, tenant: str, payment_id: str) -> Payment | None: ...

    def find_contact_by_email(self, tenant: str, email: str) -> Contact | None: ...

    def list_record_ids(self, tenant: str, kind: str) -> list[str]:
        """Every id of `kind` ("contact", "invoice" — deleted ones included — or "payment") the
        location has; `crm-qbo reconcile` walks them to compare the two sides."""
        ...

    def upsert_contact(self, tenant: str, contact: Contact, origin: Origin) -> str:
        """Create or update a contact; returns the CRM contact id.

        For a record first seen in QuickBooks the plugin proposes a stable id (`contact.id`, e.g.
        ``qbo-<realm>-c<Id>``): create it under that id when it is free, so an import re-run after a
        crash updates the same record instead of making a second one; otherwise pick one and return it."""
        ...

    def upsert_invoice(self, tenant: str, invoice: Invoice, origin: Origin) -> str:
        """Create or update an invoice imported from QuickBooks; returns the CRM invoice id (the
        proposed-id rule of `upsert_contact` applies)."""
        ...

    def update_invoice_status(self, tenant: str, invoice_id: str, status: InvoiceStatus, amount_paid: Decimal) -> None:
        """QuickBooks changed a CRM-made invoice's payment state (paid, partially paid) or voided or
        deleted it. The host records it with origin QBO (so its own event is not pushed back)."""
        ...

    def fire_trigger(self, call: TriggerCall) -> None:
        """Fire an automation trigger; the host must honour `call.idempotency_key`."""
        ...
