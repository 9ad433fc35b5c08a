"""ReferenceHost: the CRM side of the plugin contract (``crm_qbo_plugin.CrmHost``).

Reads map the CRM's rows to the plugin's frozen dataclasses; writes coming from QuickBooks are
stored with origin QBO and published with origin QBO, so the plugin recognises them as its own and
never pushes them back. Each method runs in its own transaction and publishes after it commits;
the bulk methods (`upsert_contacts`, `upsert_invoices`) write a whole import page in one
transaction and publish its events together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, session
from sqlmodel import col, select

from crm_qbo_plugin import (
    Contact,
    HostUser,
    Invoice,
    InvoiceStatus,
    LocationProfile,
    Origin,
    Payment,
    RecordLabel,
    Tax,
    TriggerCall,
)
from reference_crm import automation, contacts, invoices, payments
from reference_crm.db import session as db_session
from reference_crm.errors import NotFound
from reference_crm.models import (
    ContactRow,
    InvoiceLineRow,
    InvoiceRow,
    Location,
    PaymentRow,
    TaxRate,
)
from reference_crm.signin import SESSION_TOKEN, session_user
from reference_crm.state import CrmState

log = logging.getLogger(__name__)


class ReferenceHost:
    def __init__(self, state: CrmState) -> None:
        self.state = state
        self.engine = state.engine

    # -- who is asking -------------------------------------------------------------------------
    def current_user(self) -> HostUser | None:
        if not has_request_context():
            return None
        token = session.get(SESSION_TOKEN)
        if not token:
            return None
        with db_session(self.engine) as db:
            user = session_user(db, token)
        if user is None:
            return None
        return HostUser(id=user.id, tenant=user.location_id, name=user.name or user.email)

    # -- reads ---------------------------------------------------------------------------------
    def location_profile(self, tenant: str) -> LocationProfile | None:
        with db_session(self.engine) as db:
            location = db.get(Location, tenant)
            if location is None:
                return None
            rates = db.exec(select(TaxRate).where(TaxRate.location_id == tenant).order_by(col(TaxRate.name))).all()
        return LocationProfile(currency=location.currency,
                               taxes=tuple(Tax(id=r.id, name=r.name, rate_percent=r.rate_percent) for r in rates))

    def get_contact(self, tenant: str, contact_id: str) -> Contact | None:
        with db_session(self.engine) as db:
            try:
                return contacts.to_plugin_contact(contacts.get_contact_row(db, tenant, contact_id))
            except NotFound:
                return None

    def get_invoice(self, tenant: str, invoice_id: str) -> Invoice | None:
        """Deleted invoices are still returned, with status DELETED (the plugin may need their link)."""
        with db_session(self.engine) as db:
            try:
                row = invoices.get_invoice_row(db, tenant, invoice_id, include_deleted=True)
            except NotFound:
                return None
            return invoices.to_plugin_invoice(row, invoices.invoice_lines(db, row.id))

    def get_contacts(self, tenant: str, contact_ids: Sequence[str]) -> dict[str, Contact]:
        """`get_contact` for many ids, with one query per 500 of them."""
        wanted = list(dict.fromkeys(contact_ids))
        found: dict[str, Contact] = {}
        with db_session(self.engine) as db:
            for start in range(0, len(wanted), contacts.IN_CHUNK):
                rows = db.exec(select(ContactRow).where(
                    ContactRow.location_id == tenant, col(ContactRow.id).in_(wanted[start:start + contacts.IN_CHUNK])))
                found.update((row.id, contacts.to_plugin_contact(row)) for row in rows)
        return found

    def get_invoices(self, tenant: str, invoice_ids: Sequence[str]) -> dict[str, Invoice]:
        """`get_invoice` for many ids (deleted ones included), with two queries per 500 of them."""
        wanted = list(dict.fromkeys(invoice_ids))
        found: dict[str, Invoice] = {}
        with db_session(self.engine) as db:
            for start in range(0, len(wanted), contacts.IN_CHUNK):
                chunk = wanted[start:start + contacts.IN_CHUNK]
                rows = list(db.exec(select(InvoiceRow).where(InvoiceRow.location_id == tenant, col(InvoiceRow.id).in_(chunk))))
                lines: dict[str, list[InvoiceLineRow]] = {row.id: [] for row in rows}
                for line in db.exec(select(InvoiceLineRow).where(col(InvoiceLineRow.invoice_id).in_(list(lines)))
                                    .order_by(col(InvoiceLineRow.invoice_id), col(InvoiceLineRow.position))):
                    lines[line.invoice_id].append(line)
                found.update((row.id, invoices.to_plugin_invoice(row, lines[row.id])) for row in rows)
        return found

    def get_payment(self, tenant: str, payment_id: str) -> Payment | None:
        with db_session(self.engine) as db:
            try:
                return payments.to_plugin_payment(payments.get_payment_row(db, tenant, payment_id))
            except NotFound:
                return None

    def list_record_ids(self, tenant: str, kind: str) -> list[str]:
        with db_session(self.engine) as db:
            if kind == "contact":
                return list(db.exec(select(ContactRow.id).where(ContactRow.location_id == tenant).order_by(col(ContactRow.id))))
            if kind == "invoice":
                return list(db.exec(select(InvoiceRow.id).where(InvoiceRow.location_id == tenant).order_by(col(InvoiceRow.id))))
            if kind == "payment":
                return list(db.exec(select(PaymentRow.id).where(PaymentRow.location_id == tenant).order_by(col(PaymentRow.id))))
        raise ValueError(f"unknown record kind {kind!r}")

    def find_contact_by_email(self, tenant: str, email: str) -> Contact | None:
        """The oldest contact of `tenant` with this e-mail, compared case-insensitively."""
        key = contacts.email_key(email)
        if key is None:
            return None
        with db_session(self.engine) as db:
            row = db.exec(
                select(ContactRow)
                .where(ContactRow.location_id == tenant, ContactRow.email_key == key)
                .order_by(col(ContactRow.created_at), col(ContactRow.id))
            ).first()
            return contacts.to_plugin_contact(row) if row else None

    def find_contacts_by_email(self, tenant: str, emails: Sequence[str]) -> dict[str, Contact]:
        """`find_contact_by_email` for many e-mails, with one query per 500 of them."""
        keys = {email: key for email in emails if (key := contacts.email_key(email)) is not None}
        wanted = sorted(set(keys.values()))
        oldest: dict[str, Contact] = {}
        with db_session(self.engine) as db:
            for start in range(0, len(wanted), contacts.IN_CHUNK):
                rows = db.exec(
                    select(ContactRow)
                    .where(ContactRow.location_id == tenant, col(ContactRow.email_key).in_(wanted[start:start + contacts.IN_CHUNK]))
                    .order_by(col(ContactRow.created_at), col(ContactRow.id))
                )
                for row in rows:
                    if row.email_key is not None and row.email_key not in oldest:
                        oldest[row.email_key] = contacts.to_plugin_contact(row)
        return {email: oldest[key] for email, key in keys.items() if key in oldest}

    # -- how users know their records (optional host methods, for the QuickBooks card) ----------
    def describe_records(self, tenant: str, kind: str, ids: Sequence[str]) -> dict[str, RecordLabel]:
        """Each record's title, contact, amount and page, as the CRM's own pages show them."""
        labels: dict[str, RecordLabel] = {}
        with db_session(self.engine) as db:
            for start in range(0, len(ids), contacts.IN_CHUNK):
                chunk = list(ids[start:start + contacts.IN_CHUNK])
                if kind == "contact":
                    for c in db.exec(select(ContactRow).where(ContactRow.location_id == tenant, col(ContactRow.id).in_(chunk))):
                        labels[c.id] = RecordLabel(title=contacts.display_name(c), subtitle=c.email or c.company,
                                                   url=f"/contacts/{c.id}")
                elif kind == "invoice":
                    rows = db.exec(select(InvoiceRow, ContactRow).join(ContactRow, col(ContactRow.id) == InvoiceRow.contact_id)
                                   .where(InvoiceRow.location_id == tenant, col(InvoiceRow.id).in_(chunk)))
                    for inv, c in rows:
                        labels[inv.id] = RecordLabel(title=f"Invoice {inv.number or '(draft)'}", subtitle=contacts.display_name(c),
                                                     amount=f"{inv.total} {inv.currency}", url=f"/invoices/{inv.id}")
                elif kind == "payment":
                    paid = db.exec(select(PaymentRow, ContactRow).join(ContactRow, col(ContactRow.id) == PaymentRow.contact_id)
                                   .where(PaymentRow.location_id == tenant, col(PaymentRow.id).in_(chunk)))
                    for p, c in paid:
                        title = f"Payment {p.reference}" if p.reference else f"Payment ({p.source.replace('_', ' ')})"
                        labels[p.id] = RecordLabel(title=title, subtitle=contacts.display_name(c),
                                                   amount=f"{p.amount} {p.currency}", url="/payments")
        return labels

    def search_records(self, tenant: str, query: str, limit: int) -> dict[str, list[str]]:
        """Contacts by name, company or e-mail; invoices by number, billing e-mail or their contact;
        payments by reference or their contact."""
        pattern = "%" + query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        def like(column: Any) -> Any:
            return sa.cast(column, sa.String).ilike(pattern, escape="\\")

        with db_session(self.engine) as db:
            people = list(db.exec(select(ContactRow.id).where(ContactRow.location_id == tenant).where(
                like(ContactRow.first_name) | like(ContactRow.last_name) | like(ContactRow.email) | like(ContactRow.company)
                | like(col(ContactRow.first_name) + " " + col(ContactRow.last_name))).limit(limit)))
            bills = list(db.exec(select(InvoiceRow.id).where(InvoiceRow.location_id == tenant).where(
                like(InvoiceRow.number) | like(InvoiceRow.billing_email) | col(InvoiceRow.contact_id).in_(people)).limit(limit)))
            paid = list(db.exec(select(PaymentRow.id).where(PaymentRow.location_id == tenant).where(
                like(PaymentRow.reference) | col(PaymentRow.contact_id).in_(people)).limit(limit)))
        return {"contact": people, "invoice": bills, "payment": paid}

    # -- writes from QuickBooks ----------------------------------------------------------------
    def upsert_contact(self, tenant: str, contact: Contact, origin: Origin) -> str:
        """Update the tenant's contact with this id, or create one (with the id the plugin proposed
        when it is free, else a new one: the returned id is the one to remember)."""
        state = self.state
        with db_session(self.engine) as db:
            fields = contacts.from_plugin_contact(contact)
            try:
                row = contacts.get_contact_row(db, tenant, contact.id) if contact.id else None
            except NotFound:
                row = None
            if row is not None:
                event = contacts.update_contact(db, row, fields, origin)
            else:
                row, event = contacts.create_contact(db, tenant, fields, origin, contact_id=contact.id)
            state.commit(db, tenant, [event])
            return row.id

    def upsert_contacts(self, tenant: str, records: Sequence[Contact], origin: Origin) -> list[str]:
        """`upsert_contact` for many contacts in one transaction; the ids in the same order."""
        with db_session(self.engine) as db:
            written = contacts.upsert_from_plugin(db, tenant, list(records), origin)
            self.state.commit(db, tenant, [event for _id, event in written])
            return [contact_id for contact_id, _event in written]

    def upsert_invoices(self, tenant: str, records: Sequence[Invoice], origin: Origin) -> list[str]:
        """`upsert_invoice` for many invoices in one transaction; the ids in the same order."""
        with db_session(self.engine) as db:
            written = invoices.upsert_many_from_qbo(db, tenant, list(records), origin)
            self.state.commit(db, tenant, [event for _id, event in written])
            return [invoice_id for invoice_id, _event in written]

    def upsert_invoice(self, tenant: str, invoice: Invoice, origin: Origin) -> str:
        state = self.state
        with db_session(self.engine) as db:
            invoice_id, event = invoices.upsert_from_qbo(db, tenant, invoice, origin)
            state.commit(db, tenant, [event])
            return invoice_id

    def update_invoice_status(self, tenant: str, invoice_id: str, status: InvoiceStatus, amount_paid: Decimal) -> None:
        state = self.state
        with db_session(self.engine) as db:
            row = invoices.get_invoice_row(db, tenant, invoice_id, include_deleted=True)
            event = invoices.set_status_from_qbo(db, row, status, amount_paid)
            state.commit(db, tenant, [event])

    def fire_trigger(self, call: TriggerCall) -> None:
        with db_session(self.engine) as db:
            if automation.record_trigger(db, call) is None:
                log.info("crm.trigger_repeated", extra={"tenant": call.tenant, "trigger": call.trigger})
