"""A CrmHost kept in a SQLite file, so a CRM survives the worker process being killed (the
import crash test runs the import in a subprocess that is SIGKILLed, then resumes in another).
Each write commits at once, as a real CRM's API call would."""

from __future__ import annotations

import pickle
import sqlite3
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from crm_qbo_plugin import Contact, HostUser, Invoice, InvoiceStatus, Origin, Payment, TriggerCall
from crm_qbo_plugin.host import LocationProfile


class FileHost:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS record (kind TEXT, tenant TEXT, id TEXT, email TEXT, body BLOB,"
                         " PRIMARY KEY (kind, tenant, id))")
        self._db.execute("CREATE INDEX IF NOT EXISTS record_email ON record (tenant, email)")
        self._db.execute("CREATE TABLE IF NOT EXISTS seq (n INTEGER PRIMARY KEY AUTOINCREMENT)")

    def _get(self, kind: str, tenant: str, record_id: str) -> object | None:
        row = self._db.execute("SELECT body FROM record WHERE kind=? AND tenant=? AND id=?", (kind, tenant, record_id)).fetchone()
        return pickle.loads(row[0]) if row else None  # noqa: S301 - the test's own file

    def _put(self, kind: str, tenant: str, record_id: str, email: str | None, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO record VALUES (?, ?, ?, ?, ?)",
                         (kind, tenant, record_id, (email or "").casefold() or None, pickle.dumps(value)))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{self._db.execute('INSERT INTO seq DEFAULT VALUES').lastrowid}"

    def all(self, kind: str, tenant: str) -> list:
        return [pickle.loads(r[0]) for r in self._db.execute(  # noqa: S301
            "SELECT body FROM record WHERE kind=? AND tenant=? ORDER BY id", (kind, tenant))]

    def count(self, kind: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM record WHERE kind=?", (kind,)).fetchone()[0])

    def current_user(self) -> HostUser | None:
        return None

    def location_profile(self, tenant: str) -> LocationProfile | None:
        return LocationProfile(currency="USD")

    def list_record_ids(self, tenant: str, kind: str) -> list[str]:
        return [str(r[0]) for r in self._db.execute("SELECT id FROM record WHERE kind=? AND tenant=?", (kind, tenant))]

    def get_contact(self, tenant: str, contact_id: str) -> Contact | None:
        return self._get("contact", tenant, contact_id)  # type: ignore[return-value]

    def get_invoice(self, tenant: str, invoice_id: str) -> Invoice | None:
        return self._get("invoice", tenant, invoice_id)  # type: ignore[return-value]

    def get_payment(self, tenant: str, payment_id: str) -> Payment | None:
        return None

    def find_contact_by_email(self, tenant: str, email: str) -> Contact | None:
        row = self._db.execute("SELECT body FROM record WHERE kind='contact' AND tenant=? AND email=? LIMIT 1",
                               (tenant, email.casefold())).fetchone()
        return pickle.loads(row[0]) if row else None  # noqa: S301

    def upsert_contact(self, tenant: str, contact: Contact, origin: Origin) -> str:
        contact_id = contact.id or self._new_id("c")
        self._put("contact", tenant, contact_id, contact.email, replace(contact, id=contact_id, origin=origin))
        return contact_id

    def upsert_invoice(self, tenant: str, invoice: Invoice, origin: Origin) -> str:
        invoice_id = invoice.id or self._new_id("i")
        self._put("invoice", tenant, invoice_id, None, replace(invoice, id=invoice_id, origin=origin))
        return invoice_id

    def update_invoice_status(self, tenant: str, invoice_id: str, status: InvoiceStatus, amount_paid: Decimal) -> None:
        invoice = self.get_invoice(tenant, invoice_id)
        assert invoice is not None
        self._put("invoice", tenant, invoice_id, None, replace(invoice, status=status, amount_paid=amount_paid))

    def fire_trigger(self, call: TriggerCall) -> None:
        return None
