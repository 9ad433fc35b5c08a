"""The CRM's own tables, all prefixed crm_, on their own metadata.

They live in a registry separate from the plugin's, so ``create_all`` at start-up makes only these
tables; the plugin's qbo_ tables come from its migrations (``crm-qbo db upgrade``).
Money columns are NUMERIC and read back as Decimal; times are stored as aware UTC.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from reference_crm.db import ExactDecimal, UtcDateTime, utcnow

metadata = sa.MetaData()


class CrmModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of the CRM's tables (not the plugin's metadata)."""


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _when(nullable: bool = True) -> Any:
    if nullable:
        return Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    return Field(default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False))


def _money(scale: int = 2, default: str = "0.00") -> Any:
    return Field(default=Decimal(default), sa_column=sa.Column(ExactDecimal(scale), nullable=False))


def _json(default: Any = dict) -> Any:
    return Field(default_factory=default, sa_column=sa.Column(sa.JSON, nullable=False))


class Location(CrmModel, table=True):
    """A tenant: every other row belongs to exactly one location."""

    __tablename__ = "crm_location"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    currency: str = Field(default="USD", max_length=3)
    next_invoice_number: int = 1001
    created_at: datetime = _when(nullable=False)


class User(CrmModel, table=True):
    __tablename__ = "crm_user"

    id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    email: str = Field(max_length=254, unique=True)  # stored lower-cased: the login name
    name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=255)
    created_at: datetime = _when(nullable=False)


class ApiKey(CrmModel, table=True):
    """A location's API key, stored as its SHA-256 (keys are 256-bit random, so no slow hash)."""

    __tablename__ = "crm_api_key"

    id: int | None = Field(default=None, primary_key=True)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = _when(nullable=False)


class TaxRate(CrmModel, table=True):
    __tablename__ = "crm_tax_rate"

    id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    name: str = Field(max_length=100)
    rate_percent: Decimal = Field(sa_column=sa.Column(ExactDecimal(4), nullable=False))


class ContactRow(CrmModel, table=True):
    __tablename__ = "crm_contact"
    __table_args__ = (sa.Index("ix_crm_contact_location_email", "location_id", "email_key"),)

    id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    email: str | None = Field(default=None, max_length=254)
    email_key: str | None = Field(default=None, max_length=254)  # casefolded, for lookups
    phone: str = Field(default="", max_length=40)
    company: str = Field(default="", max_length=200)
    origin: str = Field(default="crm", max_length=8)  # where the record was born
    # False while QuickBooks has the customer inactive (QBO's "delete"): the contact is kept, shown
    # as "Inactive in QuickBooks". Only the plugin sets it; the API shows it read-only.
    active: bool = Field(default=True, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true()))
    version: int = 1
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)


class InvoiceRow(CrmModel, table=True):
    __tablename__ = "crm_invoice"

    id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    contact_id: str = Field(foreign_key="crm_contact.id", index=True, max_length=64)
    number: str | None = Field(default=None, max_length=64)
    status: str = Field(default="draft", max_length=20)
    currency: str = Field(max_length=3)
    issue_date: date
    due_date: date | None = None
    billing_email: str | None = Field(default=None, max_length=254)
    subtotal: Decimal = _money()
    discount_total: Decimal = _money()  # every discount: the lines' and the invoice's own
    invoice_discount: Decimal = _money()  # the invoice's own discount (QuickBooks imports only)
    tax_total: Decimal = _money()
    total: Decimal = _money()
    amount_paid: Decimal = _money()
    # The tax rates this invoice uses, frozen when it was last saved: [{"id","name","rate_percent"}].
    taxes: list[dict[str, str]] = _json(list)
    origin: str = Field(default="crm", max_length=8)
    sent_at: datetime | None = _when()
    version: int = 1
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)


class InvoiceLineRow(CrmModel, table=True):
    __tablename__ = "crm_invoice_line"

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: str = Field(foreign_key="crm_invoice.id", index=True, max_length=64)
    position: int
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=4000)
    sku: str | None = Field(default=None, max_length=100)
    quantity: Decimal = Field(sa_column=sa.Column(ExactDecimal(4), nullable=False))
    unit_price: Decimal = Field(sa_column=sa.Column(ExactDecimal(3), nullable=False))
    discount: Decimal = _money()
    amount: Decimal = _money()  # quantity × unit price, rounded to cents, before discount
    tax_ids: list[str] = _json(list)


class PaymentRow(CrmModel, table=True):
    __tablename__ = "crm_payment"

    id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    contact_id: str = Field(foreign_key="crm_contact.id", index=True, max_length=64)
    source: str = Field(max_length=20)
    amount: Decimal = _money()
    currency: str = Field(max_length=3)
    paid_at: datetime = _when(nullable=False)
    invoice_id: str | None = Field(default=None, foreign_key="crm_invoice.id", max_length=64)
    reference: str = Field(default="", max_length=200)
    # What was bought, for payments not against an invoice: [{"name","sku","quantity","unit_price"}]
    # with Decimal values as strings.
    lines: list[dict[str, Any]] = _json(list)
    origin: str = Field(default="crm", max_length=8)
    created_at: datetime = _when(nullable=False)


class AutomationLogRow(CrmModel, table=True):
    """Every trigger call received from the plugin; one row per location and idempotency key."""

    __tablename__ = "crm_automation_log"
    __table_args__ = (sa.UniqueConstraint("location_id", "idempotency_key", name="uq_crm_automation_key"),)

    id: int | None = Field(default=None, primary_key=True)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    trigger: str = Field(max_length=64)
    contact_id: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=200)
    payload: dict[str, Any] = _json()
    received_at: datetime = _when(nullable=False)


class OutgoingMessageRow(CrmModel, table=True):
    """A message the CRM "sent" (the reference CRM records it instead of mailing it)."""

    __tablename__ = "crm_outgoing_message"

    id: int | None = Field(default=None, primary_key=True)
    location_id: str = Field(foreign_key="crm_location.id", index=True, max_length=64)
    contact_id: str = Field(max_length=64)
    to_address: str = Field(max_length=254)
    subject: str = Field(max_length=200)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    automation_id: int | None = Field(default=None, foreign_key="crm_automation_log.id")
    created_at: datetime = _when(nullable=False)


class SignInSession(CrmModel, table=True):
    """A signed-in browser, known server-side: signing out deletes the row, so an old cookie is dead.
    Only the SHA-256 of the session token is stored; the token lives in the signed cookie."""

    __tablename__ = "crm_signin_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="crm_user.id", index=True, max_length=64)
    created_at: datetime = _when(nullable=False)


class SignInFailures(CrmModel, table=True):
    """Recent wrong passwords per account or per client address (keyed by a SHA-256, never the
    address or e-mail itself), for the sign-in throttle."""

    __tablename__ = "crm_signin_failures"

    key_hash: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    last_failure_at: datetime = _when(nullable=False)
