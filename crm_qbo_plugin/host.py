"""The contract between the plugin and the CRM that mounts it.

The CRM implements `CrmHost`; the plugin calls it to read the records named in host events and to
write what comes from QuickBooks. Records cross this boundary as the small frozen dataclasses below,
with money as `Decimal` and times timezone-aware, so mapping code never guesses units or zones.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar, runtime_checkable

log = logging.getLogger(__name__)


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
    """A CRM contact.

    `active` is False when the contact's QuickBooks customer is inactive: QuickBooks never deletes
    a customer, it makes it inactive (and appends " (deleted)" to its name, which the plugin strips).
    The plugin sets it only on contacts it writes from QuickBooks (`upsert_contact(s)`, origin QBO),
    and sets it back to True when QuickBooks reactivates the customer. A host must store it and show
    it (the reference CRM: "Inactive in QuickBooks" on the contact page, `active` in its API) and
    must keep the contact and its history: an inactive customer is not a reason to delete anything.
    A host that cannot store it may ignore it, at the cost of its users not knowing. Reads
    (`get_contact`, `find_contact_by_email`) should return the stored value; the plugin never pushes
    it back to QuickBooks.
    """

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
        crash updates the same record instead of making a second one; otherwise pick one and return it.
        Store `contact.active` (see `Contact`): False means "inactive in QuickBooks", not "delete"."""
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


# ---------------------------------------------------------------------------------------------------
# Optional bulk methods. An import writes thousands of records; a host that can write many in one
# transaction (and publish their events together) may add any of these methods to its CrmHost. They
# are not part of the `CrmHost` protocol, so a host without them still satisfies it: the functions
# below call the bulk method when the host has it, and the single-record method once per record
# otherwise. Plugin code calls these functions, never the bulk methods directly.
#
#   upsert_contacts(tenant, contacts: Sequence[Contact], origin) -> list[str]
#       Every contact in one transaction, as if `upsert_contact` were called for each in order (the
#       same proposed-id rule); returns the CRM ids in the same order. All or nothing.
#   upsert_invoices(tenant, invoices: Sequence[Invoice], origin) -> list[str]
#       The same for `upsert_invoice`.
#   find_contacts_by_email(tenant, emails: Sequence[str]) -> Mapping[str, Contact]
#       `find_contact_by_email` for many e-mails at once, keyed by the e-mail as given; an e-mail
#       with no contact is left out.
#   get_contacts(tenant, ids: Sequence[str]) -> Mapping[str, Contact]
#   get_invoices(tenant, ids: Sequence[str]) -> Mapping[str, Invoice]
#       `get_contact` / `get_invoice` for many ids at once (a CDC poll or a webhook drain compares
#       each changed record with the CRM's copy), keyed by id; an id the host lacks is left out.
# ---------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------
# Optional methods for the card: how the CRM's users know their records. A host without them still
# works; the card then names records by kind and id and links only to QuickBooks.
#
#   describe_records(tenant, kind, ids: Sequence[str]) -> Mapping[str, RecordLabel]
#       For kind "contact", "invoice" or "payment": each id's label (title such as "Invoice INV-1007",
#       subtitle such as the contact's name, amount as text with its currency, and the URL of the
#       record's page in the CRM: absolute http(s) or a path starting with "/"). Unknown ids are left out.
#   search_records(tenant, query: str, limit: int) -> Mapping[str, Sequence[str]]
#       The ids per kind ("contact", "invoice", "payment") whose number, name or e-mail contains
#       `query` (case-insensitive), at most `limit` per kind.
# ---------------------------------------------------------------------------------------------------

HOST_KINDS = ("contact", "invoice", "payment")


@dataclass(frozen=True)
class RecordLabel:
    """A record as the CRM's users know it, for the card's rows and history."""

    title: str
    subtitle: str = ""
    amount: str = ""
    url: str | None = None


def _safe_url(url: Any) -> str | None:
    """Only links a browser follows harmlessly: http(s) or a same-site path (never javascript:)."""
    if not isinstance(url, str) or not url or any(c in url for c in "\\\n\r\t\"<>"):
        return None
    if url.startswith("/") and not url.startswith("//"):
        return url
    return url if url.lower().startswith(("https://", "http://")) else None


def describe_records(host: CrmHost, tenant: str, kind: str, ids: Sequence[str]) -> dict[str, RecordLabel]:
    """The host's labels for `ids` of `kind`, or none when the host cannot describe records (the
    card then falls back to kind and id). Labels are cosmetic: an answer that breaks the contract is
    logged and ignored rather than breaking the card."""
    method = getattr(host, "describe_records", None)
    wanted = list(dict.fromkeys(ids))
    if not callable(method) or not wanted or kind not in HOST_KINDS:
        return {}
    found = method(tenant, kind, wanted)
    if not isinstance(found, Mapping):
        log.warning("host.contract_broken method=describe_records answer=%s", type(found).__name__)
        return {}
    labels: dict[str, RecordLabel] = {}
    for record_id in wanted:
        label = found.get(record_id)
        if isinstance(label, RecordLabel):
            labels[record_id] = RecordLabel(title=str(label.title), subtitle=str(label.subtitle or ""),
                                            amount=str(label.amount or ""), url=_safe_url(label.url))
    return labels


def search_records(host: CrmHost, tenant: str, query: str, limit: int = 500) -> dict[str, list[str]]:
    """Ids per kind the host finds for `query` (number, name, e-mail); {} when it cannot search."""
    method = getattr(host, "search_records", None)
    if not callable(method):
        return {}
    found = method(tenant, query, limit)
    if not isinstance(found, Mapping):
        log.warning("host.contract_broken method=search_records answer=%s", type(found).__name__)
        return {}
    return {kind: [i for i in list(found.get(kind) or ())[:limit] if isinstance(i, str)] for kind in HOST_KINDS}


class HostContractError(RuntimeError):
    """A host's bulk method answered something the contract does not allow (wrong count, no id)."""


def _ids(answer: Any, expected: int, method: str) -> list[str]:
    ids = list(answer) if isinstance(answer, Sequence) and not isinstance(answer, str) else None
    if ids is None or len(ids) != expected or not all(isinstance(i, str) and i for i in ids):
        raise HostContractError(f"{method} must return one non-empty id per record ({expected})")
    return ids


def upsert_contacts(host: CrmHost, tenant: str, contacts: Sequence[Contact], origin: Origin) -> list[str]:
    """Write `contacts` with the host's bulk method if it has one, else one `upsert_contact` each."""
    if not contacts:
        return []
    bulk = getattr(host, "upsert_contacts", None)
    if callable(bulk):
        return _ids(bulk(tenant, list(contacts), origin), len(contacts), "upsert_contacts")
    return [host.upsert_contact(tenant, contact, origin) for contact in contacts]


def upsert_invoices(host: CrmHost, tenant: str, invoices: Sequence[Invoice], origin: Origin) -> list[str]:
    """Write `invoices` with the host's bulk method if it has one, else one `upsert_invoice` each."""
    if not invoices:
        return []
    bulk = getattr(host, "upsert_invoices", None)
    if callable(bulk):
        return _ids(bulk(tenant, list(invoices), origin), len(invoices), "upsert_invoices")
    return [host.upsert_invoice(tenant, invoice, origin) for invoice in invoices]


def can_find_contacts_in_bulk(host: CrmHost) -> bool:
    return callable(getattr(host, "find_contacts_by_email", None))


def find_contacts_by_email(host: CrmHost, tenant: str, emails: Sequence[str]) -> dict[str, Contact | None]:
    """The contact for each e-mail (None: nobody), in one host call when the host can."""
    wanted = list(dict.fromkeys(emails))
    if not wanted:
        return {}
    bulk = getattr(host, "find_contacts_by_email", None)
    if not callable(bulk):
        return {email: host.find_contact_by_email(tenant, email) for email in wanted}
    found = bulk(tenant, wanted)
    if not isinstance(found, Mapping):
        raise HostContractError("find_contacts_by_email must return a mapping of e-mail to Contact")
    answer: dict[str, Contact | None] = {}
    for email in wanted:
        contact = found.get(email)
        if contact is not None and not isinstance(contact, Contact):
            raise HostContractError("find_contacts_by_email must map each e-mail to a Contact")
        answer[email] = contact
    return answer


_Record = TypeVar("_Record", Contact, Invoice)


def get_contacts(host: CrmHost, tenant: str, ids: Sequence[str]) -> dict[str, Contact]:
    """The host's contacts with these ids (ids it lacks left out), in one host call when it can."""
    return _get_many(host, tenant, ids, "get_contacts", host.get_contact, Contact)


def get_invoices(host: CrmHost, tenant: str, ids: Sequence[str]) -> dict[str, Invoice]:
    """The host's invoices with these ids (deleted ones included, as `get_invoice` returns them)."""
    return _get_many(host, tenant, ids, "get_invoices", host.get_invoice, Invoice)


def _get_many(host: CrmHost, tenant: str, ids: Sequence[str], method: str,
              one: Callable[[str, str], Any], kind: type[_Record]) -> dict[str, _Record]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    bulk = getattr(host, method, None)
    if not callable(bulk):
        return {record_id: record for record_id in wanted if (record := one(tenant, record_id)) is not None}
    found = bulk(tenant, wanted)
    if not isinstance(found, Mapping):
        raise HostContractError(f"{method} must return a mapping of id to {kind.__name__}")
    answer: dict[str, _Record] = {}
    for record_id in wanted:
        record = found.get(record_id)
        if record is None:
            continue
        if not isinstance(record, kind) or record.id != record_id:
            raise HostContractError(f"{method} must map each id to the {kind.__name__} with that id")
        answer[record_id] = record
    return answer
