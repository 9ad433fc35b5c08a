"""Companies (realms) and the state each one holds: entities, tombstones, name and number indexes.

A company's entity dicts are copy-on-write: a write builds a new dict and swaps it in under the
company lock, so readers can serialize what they got without holding any lock.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from qbo_sandbox import errors

#: Entities whose Ids come from one shared transaction sequence (TxnId space), as in QBO.
TRANSACTIONS = ("Invoice", "SalesReceipt", "Payment", "CreditMemo")
#: Name-list entities (never deleted, only inactivated).
NAME_LISTS = ("Customer", "Vendor", "Employee", "Item", "Account")
#: Customer, Vendor and Employee share one DisplayName namespace.
PERSON_NAMESPACE = ("Customer", "Vendor", "Employee")

CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "EUR": "Euro",
    "INR": "Indian Rupee",
    "NZD": "New Zealand Dollar",
}
COUNTRY_CURRENCY = {"US": "USD", "GB": "GBP", "UK": "GBP", "CA": "CAD", "AU": "AUD",
                    "IN": "INR", "FR": "EUR", "NZ": "NZD"}


@dataclass
class Limits:
    """Per-realm throttle limits (QBO: 500/min, 10 in flight, 40 batches/min)."""

    per_minute: int = 500
    concurrent: int = 10
    batch_per_minute: int = 40
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "per_minute": self.per_minute,
            "concurrent": self.concurrent,
            "batch_per_minute": self.batch_per_minute,
            "enabled": self.enabled,
        }

    def update(self, payload: dict[str, Any]) -> None:
        for key in ("per_minute", "concurrent", "batch_per_minute"):
            if key in payload:
                value = int(payload[key])
                if value < 1:
                    raise ValueError(f"{key} must be at least 1")
                setattr(self, key, value)
        if "enabled" in payload:
            self.enabled = bool(payload["enabled"])


@dataclass
class Record:
    """One stored entity. ``data`` is never mutated after it is stored (copy-on-write)."""

    data: dict[str, Any]
    created: datetime
    updated: datetime
    voided: bool = False


@dataclass
class TaxRateInfo:
    rate_id: str
    name: str
    percent: Decimal


@dataclass
class Company:
    """A realm: settings plus every entity, tombstone and index."""

    realm_id: str
    name: str
    country: str
    home_currency: str
    tz: ZoneInfo
    created: datetime
    limits: Limits = field(default_factory=Limits)
    books_closed_date: date | None = None
    name_conflicts: bool = True
    name_write_ms: float = 0.0
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    tombstones: dict[str, dict[str, datetime]] = field(default_factory=dict)
    name_index: dict[str, dict[str, str]] = field(default_factory=dict)
    doc_numbers: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    # the highest numeric DocNumber an entity has had: auto-numbering counts up from it without a
    # scan of every number (QBO does not reuse a number freed by a delete either)
    top_doc_numbers: dict[str, int] = field(default_factory=dict)
    customer_txns: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    opening_balances: dict[str, Decimal] = field(default_factory=dict)
    #: (TxnType, TxnId) of an invoice/credit memo -> {payment Id: amount applied}
    applications: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)
    #: payment Id -> {(TxnType, TxnId): amount applied}
    payment_apps: dict[str, dict[tuple[str, str], Decimal]] = field(default_factory=dict)
    replays: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    tax_codes: dict[str, list[TaxRateInfo]] = field(default_factory=dict)
    default_tax_code: str = ""
    special_accounts: dict[str, str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _name_writes: int = 0
    _counters: dict[str, Iterator[int]] = field(default_factory=dict)
    _address_ids: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    @property
    def is_us(self) -> bool:
        return self.country == "US"

    @property
    def currency_ref(self) -> dict[str, str]:
        return {"name": CURRENCY_NAMES.get(self.home_currency, self.home_currency),
                "value": self.home_currency}

    # -- preferences-backed settings ------------------------------------------------------

    def preferences(self) -> dict[str, Any]:
        return self.records["Preferences"]["1"].data

    @property
    def custom_txn_numbers(self) -> bool:
        return bool(self.preferences()["SalesFormsPrefs"].get("CustomTxnNumbers"))

    @property
    def multicurrency(self) -> bool:
        return bool(self.preferences()["CurrencyPrefs"].get("MultiCurrencyEnabled"))

    # -- ids ---------------------------------------------------------------------------------

    def new_id(self, entity: str) -> str:
        key = "Txn" if entity in TRANSACTIONS else entity
        counter = self._counters.get(key)
        if counter is None:
            existing = [int(i) for kind in ((TRANSACTIONS) if key == "Txn" else (entity,))
                        for i in self.records.get(kind, {}) if i.isdigit()]
            counter = itertools.count(max(existing, default=0) + 1)
            self._counters[key] = counter
        return str(next(counter))

    def new_address_id(self) -> str:
        return str(next(self._address_ids))

    # -- records -------------------------------------------------------------------------------

    def table(self, entity: str) -> dict[str, Record]:
        return self.records.setdefault(entity, {})

    def get(self, entity: str, entity_id: str) -> Record | None:
        return self.records.get(entity, {}).get(str(entity_id))

    def put(self, entity: str, record: Record) -> None:
        self.table(entity)[str(record.data["Id"])] = record

    def remove(self, entity: str, entity_id: str, when: datetime) -> None:
        self.table(entity).pop(entity_id, None)
        self.tombstones.setdefault(entity, {})[entity_id] = when

    # -- name namespaces -------------------------------------------------------------------

    @staticmethod
    def namespace(entity: str) -> str:
        return "Person" if entity in PERSON_NAMESPACE else entity

    def name_owner(self, entity: str, name: str) -> str | None:
        """``"Entity:Id"`` of whoever holds ``name`` in the entity's namespace (case-insensitive)."""
        return self.name_index.get(self.namespace(entity), {}).get(name.strip().casefold())

    def claim_name(self, entity: str, entity_id: str, old: str | None, new: str) -> None:
        index = self.name_index.setdefault(self.namespace(entity), {})
        if old is not None:
            index.pop(old.strip().casefold(), None)
        index[new.strip().casefold()] = f"{entity}:{entity_id}"

    # -- document numbers ------------------------------------------------------------------

    def doc_owners(self, entity: str, number: str) -> set[str]:
        return self.doc_numbers.get(entity, {}).get(number.casefold(), set())

    def set_doc_number(self, entity: str, entity_id: str, old: str | None, new: str | None) -> None:
        index = self.doc_numbers.setdefault(entity, {})
        if old:
            owners = index.get(old.casefold())
            if owners is not None:
                owners.discard(entity_id)
                if not owners:
                    del index[old.casefold()]
        if new:
            index.setdefault(new.casefold(), set()).add(entity_id)
            if new.isdigit() and len(new) < 12:
                self.top_doc_numbers[entity] = max(self.top_doc_numbers.get(entity, 1000), int(new))

    def next_doc_number(self, entity: str) -> str:
        index = self.doc_numbers.get(entity, {})
        candidate = self.top_doc_numbers.get(entity, 1000) + 1
        while str(candidate) in index:
            candidate += 1
        return str(candidate)

    # -- "one name at a time" ----------------------------------------------------------------

    @contextmanager
    def name_write(self, items: bool = False) -> Iterator[None]:
        """Mark a name-list write in progress; an overlapping one fails with QBO's 6000."""
        with self._guard:
            if self.name_conflicts and self._name_writes > 0:
                raise errors.name_conflict(items)
            self._name_writes += 1
        try:
            if self.name_write_ms > 0:
                threading.Event().wait(self.name_write_ms / 1000.0)
            yield
        finally:
            with self._guard:
                self._name_writes -= 1

    # -- control-API view -------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {
            "realmId": self.realm_id,
            "name": self.name,
            "country": self.country,
            "home_currency": self.home_currency,
            "multicurrency": self.multicurrency,
            "custom_txn_numbers": self.custom_txn_numbers,
            "books_closed_date": self.books_closed_date.isoformat() if self.books_closed_date else None,
            "timezone": self.tz.key,
            "limits": self.limits.to_json(),
            "name_conflicts": self.name_conflicts,
            "name_write_ms": self.name_write_ms,
            "tax_codes": {
                code: [{"rate_id": r.rate_id, "name": r.name, "rate": float(r.percent)} for r in rates]
                for code, rates in self.tax_codes.items()
            },
            "default_tax_code": self.default_tax_code,
            "counts": {entity: len(table) for entity, table in self.records.items()},
        }


def new_realm_id() -> str:
    """A QBO-looking realm id: a long digit string."""
    return "9341" + "".join(str(secrets.randbelow(10)) for _ in range(12))


class CompanyStore:
    """All realms, by id. Creation and lookup are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._companies: dict[str, Company] = {}

    def add(self, company: Company) -> None:
        with self._lock:
            if company.realm_id in self._companies:
                raise ValueError(f"realm {company.realm_id} already exists")
            self._companies[company.realm_id] = company

    def get(self, realm_id: str) -> Company | None:
        return self._companies.get(realm_id)

    def all(self) -> list[Company]:
        with self._lock:
            return list(self._companies.values())

    def pairs(self) -> list[tuple[str, str]]:
        return [(c.realm_id, c.name) for c in self.all()]

    def reset(self) -> None:
        with self._lock:
            self._companies.clear()
