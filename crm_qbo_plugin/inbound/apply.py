"""Apply QBO's current state of a customer, invoice or payment to the CRM.

Rules, in order, for every entity body (re-read from QBO, or taken from a CDC or import page):
1. The link already holds this SyncToken or a newer one → skip (older or repeated news).
2. The write ledger holds this SyncToken with the same owned-field hash → our own echo: skip, but
   remember the token. A genuine edit made right after our write has a newer SyncToken (or other
   owned values) and goes through: no time window ever suppresses a change.
3. Otherwise map and write to the host with origin QBO (the host's resulting event carries origin
   QBO, which the outbound gate never pushes back), and record the link with origin "qbo" when
   the record is new to the CRM.

Who owns what: a contact follows QBO's latest change; an invoice imported from QBO is QBO's and is
rewritten whole; an invoice the CRM pushed only takes QBO's payment state (amount paid, status,
void, delete) — its other fields stay the CRM's, and a total that differs only by rounding is
stored and flagged once, never written back (no ping-pong).

An import page runs with `defer_host_writes`: the plugin proposes the CRM ids of new records, so it
can decide the whole page (links included) before the host writes anything, then hand the page's
contacts and invoices to the host in one bulk call each (`write_host`), contacts first because an
invoice may name a contact made in the same page. A host that answers another id than the proposed
one gets its own id in the link (and in the invoices that name that contact).

Xero's contacts and invoices go through the same rules: XeroApplier (xero_apply.py) overrides only
the methods that read a record of the books (one per concern, under "the books' record shapes").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Connection as DbConnection

from crm_qbo_plugin.automations import hooks
from crm_qbo_plugin.host import (
    Contact,
    CrmHost,
    Invoice,
    InvoiceStatus,
    Origin,
    can_find_contacts_in_bulk,
    find_contacts_by_email,
    get_contacts,
    get_invoices,
    upsert_contacts,
    upsert_invoices,
)
from crm_qbo_plugin.mapping.contact import (
    contact_from_customer,
    customer_email,
    is_active,
    same_contact,
)
from crm_qbo_plugin.mapping.imported_invoice import (
    amount_paid,
    invoice_from_qbo,
    invoice_status,
    money,
)
from crm_qbo_plugin.mapping.invoice import crm_marker
from crm_qbo_plugin.mapping.owned import owned_hash
from crm_qbo_plugin.qbo import NotFoundError, QboClient
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.links import Ledger, LinkBook, LinkRow, proposed_crm_id, push_lock_key
from crm_qbo_plugin.store.tables import Connection, InboxStatus, LinkKind, LinkStatus
from crm_qbo_plugin.xero import NotFoundError as XeroNotFound

log = logging.getLogger(__name__)

CONTACT, INVOICE = LinkKind.CONTACT.value, LinkKind.INVOICE.value
ROUNDING_TOLERANCE = CENT = Decimal("0.01")
DELETED = LinkStatus.DELETED.value


@dataclass(frozen=True)
class Target:
    """The tenant a realm's changes go to, and the connection settings that shape them."""

    tenant: str
    realm_id: str
    import_invoices: bool
    home_currency: str
    fire_automations: bool = True  # off for import-on-connect: history never fires triggers

    @classmethod
    def of(cls, connection: Connection) -> Target:
        if not connection.realm_id:
            raise ValueError("the connection holds no QuickBooks company")
        return cls(
            tenant=connection.tenant_id,
            realm_id=connection.realm_id,
            import_invoices=card_settings(connection).import_invoices,
            home_currency=connection.home_currency or "USD",
        )


@dataclass(frozen=True)
class Outcome:
    status: InboxStatus
    reason: str | None = None


def applied(reason: str | None = None) -> Outcome:
    return Outcome(InboxStatus.APPLIED, reason)


def skipped(reason: str) -> Outcome:
    return Outcome(InboxStatus.SKIPPED, reason)


def _id(body: Mapping[str, Any]) -> str:
    return str(body.get("Id") or "")


def _token(body: Mapping[str, Any]) -> str:
    return str(body.get("SyncToken") if body.get("SyncToken") is not None else "")


def _customer_ref(body: Mapping[str, Any]) -> str | None:
    ref = body.get("CustomerRef")
    value = ref.get("value") if isinstance(ref, Mapping) else None
    return str(value) if value not in (None, "") else None


@dataclass
class _PendingWrite:
    """A host upsert waiting for `write_host`; `link` is the new link holding the proposed id."""

    record: Contact | Invoice
    link: LinkRow | None


class Applier:
    """Applies entity bodies for one tenant. Link changes wait in `book` until `flush(conn)`; with
    `defer_host_writes`, contact and invoice upserts (and the hooks after them) wait for
    `write_host()`, which must run before `flush`."""

    # The books' record names in the link book and the write ledger (XeroApplier has its own).
    CUSTOMER, INVOICE = "Customer", "Invoice"

    def __init__(self, state: Services, target: Target, qbo: QboClient | None, *,
                 defer_host_writes: bool = False) -> None:
        self.state = state
        self.host: CrmHost = state.host
        self.target = target
        self._qbo = qbo
        self.book = LinkBook(state.engine, target.tenant)
        self.ledger = Ledger(state.engine, target.realm_id)
        self.host_writes = 0
        self.defer_host_writes = defer_host_writes
        self._contact_writes: list[_PendingWrite] = []
        self._invoice_writes: list[_PendingWrite] = []
        self._after_writes: list[Callable[[], object]] = []
        self._emails: dict[str, Contact | None] = {}  # preloaded find_contact_by_email answers
        # preloaded get_contact / get_invoice answers (None: the host lacks it); an entry goes when
        # this applier writes the record, so a later read asks the host again
        self._contacts: dict[str, Contact | None] = {}
        self._invoices: dict[str, Invoice | None] = {}

    @property
    def tenant(self) -> str:
        return self.target.tenant

    @property
    def qbo(self) -> QboClient:
        if self._qbo is None:
            raise RuntimeError("this applier reads no QuickBooks company")
        return self._qbo

    # ------------------------------------------------------------------ the books' record shapes
    # One place per concern that differs between QuickBooks and Xero; XeroApplier overrides them.

    def _contact_of(self, body: Mapping[str, Any], crm_id: str) -> Contact:
        return contact_from_customer(body, crm_id)

    def _contact_update(self, body: Mapping[str, Any], crm_id: str, current: Contact | None) -> Contact:
        """What a linked contact becomes from the books' record (`current`: the CRM's copy)."""
        return self._contact_of(body, crm_id)

    def _email_of(self, body: Mapping[str, Any]) -> str | None:
        return customer_email(body)

    def _active(self, body: Mapping[str, Any]) -> bool:
        return is_active(body)

    def _contact_ref(self, body: Mapping[str, Any]) -> str | None:
        """The books' id of the customer an invoice (or payment) names."""
        return _customer_ref(body)

    def _read_customer(self, customer_id: str) -> Mapping[str, Any]:
        """The books' customer by id; NotFoundError (QuickBooks' or Xero's) when gone."""
        return self.qbo.read("Customer", customer_id)

    def _invoice_of(self, body: Mapping[str, Any], crm_id: str, contact_id: str) -> Invoice:
        return invoice_from_qbo(body, crm_id, contact_id, self.target.home_currency)

    def _payment_state_of(self, body: Mapping[str, Any]) -> tuple[InvoiceStatus, Decimal]:
        return invoice_status(body), amount_paid(body)

    def _made_for_crm(self, body: Mapping[str, Any]) -> bool:
        """Made by this plugin for a CRM invoice whose push has not recorded its link yet."""
        return crm_marker(self.tenant, "") in str(body.get("PrivateNote") or "")

    def _total_of(self, body: Mapping[str, Any]) -> Decimal:
        return money(body.get("TotalAmt"))

    @cached_property
    def connection(self) -> Connection | None:
        """The tenant's connection, for the automation hooks (None when they are off)."""
        if not self.target.fire_automations:
            return None
        return connection_for(self.state.engine, self.tenant)

    def _linked_contact(self, customer_id: str | None) -> str | None:
        link = self.book.by_qbo(CONTACT, customer_id) if customer_id else None
        return link.crm_id if link is not None else None

    def flush(self, conn: DbConnection) -> None:
        if self._contact_writes or self._invoice_writes or self._after_writes:
            raise RuntimeError("deferred host writes are pending: call write_host() before flush()")
        self.book.flush(conn)

    def preload(self, entity: str, bodies: Sequence[Mapping[str, Any]]) -> None:
        """Read the links and ledger rows a page of bodies needs in a few queries, and the CRM's
        copies of the linked records they change (one bulk host read per kind, when the host has
        one; see host.get_contacts). From a host that can find many contacts at once, also the
        e-mail matches of its unlinked customers."""
        ids = [_id(b) for b in bodies]
        if entity == self.CUSTOMER:
            self.book.preload(CONTACT, ids)
            if can_find_contacts_in_bulk(self.host):
                emails = [e for b in bodies if self.book.by_qbo(CONTACT, _id(b)) is None and (e := self._email_of(b))]
                self._emails.update(find_contacts_by_email(self.host, self.tenant, emails))
            changed = [link.crm_id for b in bodies
                       if (link := self.book.by_qbo(CONTACT, _id(b))) is not None and not link.token_at_least(_token(b))]
            found_contacts = get_contacts(self.host, self.tenant, changed)
            self._contacts.update({crm_id: found_contacts.get(crm_id) for crm_id in changed})
        else:
            self.book.preload(INVOICE, ids)
            self.book.preload(CONTACT, [r for b in bodies if (r := self._contact_ref(b))])
            # CRM-made invoices are read even at a version the link holds (see _apply_invoice)
            changed = [link.crm_id for b in bodies
                       if (link := self.book.by_qbo(INVOICE, _id(b))) is not None and link.status != DELETED
                       and (link.origin != Origin.QBO.value or not link.token_at_least(_token(b)))]
            found_invoices = get_invoices(self.host, self.tenant, changed)
            self._invoices.update({crm_id: found_invoices.get(crm_id) for crm_id in changed})
        self.ledger.preload(entity, ids)

    # ------------------------------------------------------------------ host writes

    def _upsert_contact(self, contact: Contact, new_link: LinkRow | None = None) -> None:
        """Write `contact` now, or queue it; `new_link` (already in the book) takes the host's id."""
        self.host_writes += 1
        self._contacts.pop(contact.id, None)
        if self.defer_host_writes:
            self._contact_writes.append(_PendingWrite(contact, new_link))
            return
        crm_id = self.host.upsert_contact(self.tenant, contact, Origin.QBO)
        if new_link is not None and crm_id != new_link.crm_id:
            self._relink(new_link, crm_id)

    def _upsert_invoice(self, invoice: Invoice, new_link: LinkRow | None = None) -> None:
        self.host_writes += 1
        self._invoices.pop(invoice.id, None)
        if self.defer_host_writes:
            self._invoice_writes.append(_PendingWrite(invoice, new_link))
            return
        crm_id = self.host.upsert_invoice(self.tenant, invoice, Origin.QBO)
        if new_link is not None and crm_id != new_link.crm_id:
            self._relink(new_link, crm_id)

    def _current_contact(self, crm_id: str) -> Contact | None:
        """The CRM's contact as this batch leaves it: its queued upsert, else the preloaded copy,
        else the host's."""
        queued = next((p.record for p in reversed(self._contact_writes) if p.record.id == crm_id), None)
        if isinstance(queued, Contact):
            return queued
        if crm_id in self._contacts:
            return self._contacts[crm_id]
        return self.host.get_contact(self.tenant, crm_id)

    def _current_invoice(self, crm_id: str) -> Invoice | None:
        """The CRM's invoice as this batch leaves it: its queued upsert, else the preloaded copy,
        else the host's. A later body of the batch must be compared with what the batch will
        write, not with what the host held before it (else a newer version equal to the host's
        old state is skipped, and the older queued one written over it)."""
        queued = next((p.record for p in reversed(self._invoice_writes) if p.record.id == crm_id), None)
        if isinstance(queued, Invoice):
            return queued
        if crm_id in self._invoices:
            return self._invoices[crm_id]
        return self.host.get_invoice(self.tenant, crm_id)

    def _after_write(self, call: Callable[[], object]) -> None:
        """Run `call` once the host holds what came before it (now, unless writes are deferred)."""
        if self.defer_host_writes:
            self._after_writes.append(call)
        else:
            call()

    def _relink(self, link: LinkRow, crm_id: str) -> None:
        """The host kept another id than the proposed one: the link names the host's."""
        self.book.remove(link)
        link.crm_id = crm_id
        self.book.add(link)

    def write_host(self) -> None:
        """Hand the queued upserts to the host, one bulk call per kind, contacts first (an invoice
        may name a contact created in the same batch), then run the hooks that waited for them."""
        contacts, self._contact_writes = self._contact_writes, []
        invoices, self._invoice_writes = self._invoice_writes, []
        after, self._after_writes = self._after_writes, []
        renamed: dict[str, str] = {}
        ids = upsert_contacts(self.host, self.tenant, [p.record for p in contacts if isinstance(p.record, Contact)], Origin.QBO)
        for pending, crm_id in zip(contacts, ids, strict=True):
            if pending.link is not None and crm_id != pending.link.crm_id:
                renamed[pending.link.crm_id] = crm_id
                self._relink(pending.link, crm_id)
        records = [
            replace(p.record, contact_id=renamed.get(p.record.contact_id, p.record.contact_id))
            for p in invoices if isinstance(p.record, Invoice)
        ]
        ids = upsert_invoices(self.host, self.tenant, records, Origin.QBO)
        for pending, crm_id in zip(invoices, ids, strict=True):
            if pending.link is not None and crm_id != pending.link.crm_id:
                self._relink(pending.link, crm_id)
        for call in after:
            call()

    # ------------------------------------------------------------------ notices

    def apply_notice(self, entity: str, entity_id: str, operation: str, data: Mapping[str, Any]) -> Outcome:
        """A webhook notice names an entity only: re-read it from QBO and apply what it is now."""
        if entity == "Customer":
            if operation == "Merge" and data.get("deletedid"):
                self.merge(entity_id, str(data["deletedid"]))
            try:
                body = self.qbo.read("Customer", entity_id)
            except NotFoundError:
                return skipped("the customer no longer exists in QuickBooks")
            return self.apply_customer(body)
        if entity == "Invoice":
            try:
                body = self.qbo.read("Invoice", entity_id)
            except NotFoundError:
                return self.invoice_deleted(entity_id)
            return self.apply_invoice(body)
        if entity == "Payment":
            return self.apply_payment(entity_id)
        return skipped(f"QBO {entity} changes are not synced to the CRM")

    def apply_body(self, entity: str, body: Mapping[str, Any]) -> Outcome:
        """A body from a CDC or import page: already current, nothing to re-read."""
        if body.get("status") == "Deleted":
            if entity == "Invoice":
                return self.invoice_deleted(_id(body))
            return skipped(f"a deleted {entity} needs no change in the CRM")
        if entity == "Customer":
            return self.apply_customer(body)
        if entity == "Invoice":
            return self.apply_invoice(body)
        return skipped(f"QBO {entity} changes are not synced to the CRM")

    def _echo(self, entity: str, body: Mapping[str, Any]) -> bool:
        recorded = self.ledger.hash_for(entity, _id(body), _token(body))
        return recorded is not None and recorded == owned_hash(entity, body)

    def _settle(self, link: LinkRow, entity: str, body: Mapping[str, Any]) -> None:
        link.sync_token, link.owned_hash = _token(body), owned_hash(entity, body)
        # a change held while disconnected stays "not synced" until its Retry: QuickBooks' news
        # (our own earlier write's echo, say) does not carry it
        if link.status not in (DELETED, LinkStatus.IGNORED, LinkStatus.NOT_SYNCED):
            link.status = LinkStatus.SYNCED.value
        self.book.changed(link)

    # ------------------------------------------------------------------ customers

    def apply_customer(self, body: Mapping[str, Any], *, for_invoice: bool = False) -> Outcome:
        qbo_id = _id(body)
        link = self.book.by_qbo(CONTACT, qbo_id)
        if link is not None and link.token_at_least(_token(body)):
            return skipped("the contact already holds this version")
        if self._echo(self.CUSTOMER, body):
            if link is not None:
                self._settle(link, self.CUSTOMER, body)
            return skipped("echo of the plugin's own write")
        if link is not None:
            if self.book.holds_now(link, _token(body)):
                # Our push of a later CRM edit landed after this link was read: the books and the
                # CRM hold that edit, and this older version must not overwrite the CRM's copy.
                return skipped("the contact already holds this version")
            current = self._current_contact(link.crm_id)
            contact = self._contact_update(body, link.crm_id, current)
            self._settle(link, self.CUSTOMER, body)
            if current is not None and same_contact(current, contact):
                return skipped("the contact already has these values")
            self._upsert_contact(contact)
            return applied("contact updated" if self._active(body) else "contact flagged inactive")
        if not self._active(body) and not for_invoice:
            return skipped("an inactive customer is not imported")
        crm_id = self._match_by_email(body)
        if crm_id is not None and not for_invoice and self._being_pushed(crm_id):
            # Most likely the customer that push has just made: it records the link (with the write
            # ledger's row) itself; linking it here would announce our own customer as one made in
            # the books. An invoice's customer is linked all the same (the invoice needs it).
            return skipped("the contact with the same email is being pushed; its push links the customer")
        if crm_id is not None:
            self.book.add(LinkRow(CONTACT, crm_id, qbo_id, Origin.QBO.value, _token(body), owned_hash(self.CUSTOMER, body)))
            self._customer_created(body, crm_id)
            return applied("linked to the contact with the same email")
        proposed = proposed_crm_id(CONTACT, self.target.realm_id, qbo_id)
        if self.defer_host_writes:  # the link holds the proposed id until the host answers
            link = self.book.add(LinkRow(CONTACT, proposed, qbo_id, Origin.QBO.value, _token(body), owned_hash(self.CUSTOMER, body)))
            self._upsert_contact(self._contact_of(body, proposed), link)
        else:  # the host first: a failed write leaves no link behind
            crm_id = self.host.upsert_contact(self.tenant, self._contact_of(body, proposed), Origin.QBO)
            self.host_writes += 1
            link = self.book.add(LinkRow(CONTACT, crm_id, qbo_id, Origin.QBO.value, _token(body), owned_hash(self.CUSTOMER, body)))
        self._after_write(lambda: self._customer_created(body, link.crm_id))
        return applied("contact created")

    def _customer_created(self, body: Mapping[str, Any], contact_id: str) -> None:
        if self.connection is not None:
            hooks.after_customer_created(self.state, self.connection, body, contact_id)

    def _match_by_email(self, body: Mapping[str, Any]) -> str | None:
        email = self._email_of(body)
        if not email:
            return None
        # A preloaded answer misses contacts created since, but those are all linked (refused below).
        found = self._emails[email] if email in self._emails else self.host.find_contact_by_email(self.tenant, email)
        if found is None or self.book.by_crm(CONTACT, found.id) is not None:
            return None  # nobody, or a contact already linked to another QBO customer
        return found.id

    def _being_pushed(self, contact_id: str) -> bool:
        """Whether a push of the contact holds its lock now (it may be creating the customer)."""
        return bool(self.state.redis.exists(push_lock_key(self.tenant, CONTACT, contact_id)))

    def merge(self, survivor_id: str, deleted_id: str) -> None:
        """QBO merged customer `deleted_id` into `survivor_id`: links follow the survivor."""
        gone = self.book.by_qbo(CONTACT, deleted_id)
        if gone is None:
            return
        survivor = self.book.by_qbo(CONTACT, survivor_id)
        if survivor is None:
            self.book.move(gone, survivor_id)
            return
        survivor.detail = {**survivor.detail, "merged_contacts": [*survivor.detail.get("merged_contacts", []), gone.crm_id]}
        self.book.changed(survivor)
        self.book.remove(gone)

    def contact_for(self, customer_id: str | None) -> str | None:
        """The CRM contact of a QBO customer, importing the customer if the CRM lacks it."""
        if customer_id is None:
            return None
        link = self.book.by_qbo(CONTACT, customer_id)
        if link is None:
            try:
                body = self._read_customer(customer_id)
            except (NotFoundError, XeroNotFound):
                return None
            self.apply_customer(body, for_invoice=True)
            link = self.book.by_qbo(CONTACT, customer_id)
        return link.crm_id if link is not None else None

    # ------------------------------------------------------------------ invoices

    def apply_invoice(self, body: Mapping[str, Any]) -> Outcome:
        outcome = self._apply_invoice(body)
        link = self.book.by_qbo(INVOICE, _id(body))
        if self.connection is not None and link is not None and link.status != DELETED:
            # Every observation, even a replay: the claim makes it fire once, and a crash between
            # recording this version and firing is made good by the next observation.
            connection = self.connection
            self._after_write(lambda: self._invoice_hook(connection, body))
        return outcome

    def _invoice_hook(self, connection: Connection, body: Mapping[str, Any]) -> None:
        hooks.after_invoice_applied(self.state, connection, body, self._linked_contact(self._contact_ref(body)))

    def _apply_invoice(self, body: Mapping[str, Any]) -> Outcome:
        qbo_id = _id(body)
        link = self.book.by_qbo(INVOICE, qbo_id)
        if link is not None and link.status == DELETED:
            return skipped("the invoice was deleted in QuickBooks")
        ours = link is not None and link.origin != Origin.QBO.value
        if link is not None and link.token_at_least(_token(body)):
            # The version our own push recorded: QBO's answer to it can hold a payment made in
            # QuickBooks meanwhile, which the CRM has not heard of yet.
            if ours and link.sync_token == _token(body) and self._crm_open(link):
                outcome = self._payment_state(body, link)
                if outcome.status is InboxStatus.APPLIED:
                    return outcome
            return skipped("the invoice already holds this version")
        if self._echo(self.INVOICE, body):
            if link is not None and ours and self._crm_open(link):
                outcome = self._payment_state(body, link)  # as above
                if outcome.status is InboxStatus.APPLIED:
                    return outcome
            elif link is not None:
                self._settle(link, self.INVOICE, body)
            return skipped("echo of the plugin's own write")
        if link is None:
            if self._made_for_crm(body):
                # Made by this plugin for a CRM invoice whose push has not recorded its link yet (a
                # worker stopped after QuickBooks answered, or the link write is still on its way):
                # not a QuickBooks invoice to import. The push's retry finds it by this marker.
                return skipped("created by the plugin for a CRM invoice; its push links it")
            if not self.target.import_invoices:
                return skipped("not linked, and invoice import is off")
            return self._import_invoice(body, None)
        if link.origin == Origin.QBO.value:
            return self._import_invoice(body, link)
        return self._payment_state(body, link)

    def _import_invoice(self, body: Mapping[str, Any], link: LinkRow | None) -> Outcome:
        contact_id = self.contact_for(self._contact_ref(body))
        if contact_id is None:
            return skipped("the invoice's customer could not be found in QuickBooks")
        crm_id = link.crm_id if link is not None else proposed_crm_id(INVOICE, self.target.realm_id, _id(body))
        invoice = self._invoice_of(body, crm_id, contact_id)
        if link is not None:
            current = self._current_invoice(link.crm_id)
            self._settle(link, self.INVOICE, body)
            if current is not None and replace(current, updated_at=None, origin=Origin.QBO, sent_at=None) == replace(
                invoice, updated_at=None, sent_at=None
            ):
                return skipped("the invoice already has these values")
            self._upsert_invoice(invoice)
            return applied("imported invoice updated")
        if self.defer_host_writes:
            new = self.book.add(LinkRow(INVOICE, crm_id, _id(body), Origin.QBO.value, _token(body), owned_hash(self.INVOICE, body)))
            self._upsert_invoice(invoice, new)
            return applied("invoice imported")
        crm_id = self.host.upsert_invoice(self.tenant, invoice, Origin.QBO)
        self.host_writes += 1
        self.book.add(LinkRow(INVOICE, crm_id, _id(body), Origin.QBO.value, _token(body), owned_hash(self.INVOICE, body)))
        return applied("invoice imported")

    def _crm_open(self, link: LinkRow) -> bool:
        """A CRM-made invoice the CRM has not voided or deleted (those states are the CRM's to push)."""
        current = self._current_invoice(link.crm_id)
        return current is not None and current.status not in (InvoiceStatus.VOID, InvoiceStatus.DELETED)

    def _payment_state(self, body: Mapping[str, Any], link: LinkRow) -> Outcome:
        """A CRM-made invoice takes only QBO's payment state; its total is compared, not copied."""
        current = self._current_invoice(link.crm_id)
        self._settle(link, self.INVOICE, body)
        if current is None:
            return skipped("the CRM no longer has this invoice")
        self._flag_total(link, current.total, body)
        status, paid = self._payment_state_of(body)
        if status is InvoiceStatus.SENT and current.status in (InvoiceStatus.DRAFT, InvoiceStatus.SENT):
            status = current.status  # QBO "open" says nothing new about a CRM draft or sent invoice
        if status == current.status and paid == current.amount_paid:
            return skipped("the invoice's payment state is unchanged")
        self.host.update_invoice_status(self.tenant, link.crm_id, status, paid)
        self._invoices.pop(link.crm_id, None)
        self.host_writes += 1
        return applied(f"payment state updated ({status.value})")

    def _flag_total(self, link: LinkRow, crm_total: Decimal, body: Mapping[str, Any]) -> None:
        books_total = self._total_of(body)
        difference = books_total - crm_total
        if difference == 0:
            return
        key = "rounding" if abs(difference) <= ROUNDING_TOLERANCE else "total_mismatch"
        flag = {"crm_total": str(crm_total.quantize(CENT)), "qbo_total": str(books_total.quantize(CENT))}
        if link.detail.get(key) != flag:
            link.detail = {**link.detail, key: flag}
            self.book.changed(link)
            log.info("inbound.total_differs key=%s kept=quickbooks", key)

    def invoice_deleted(self, qbo_id: str) -> Outcome:
        """QBO deleted the invoice: the CRM record is marked deleted and the link kept as
        "deleted", so its QBO id is never reused and no later push resurrects it."""
        link = self.book.by_qbo(INVOICE, qbo_id)
        if link is None:
            return skipped("a deleted invoice the CRM never had")
        if link.status == DELETED:
            return skipped("the invoice was already marked deleted")
        current = self._current_invoice(link.crm_id)
        link.status = DELETED
        self.book.changed(link)
        if current is None:
            return skipped("the CRM no longer has this invoice")
        self._invoices.pop(link.crm_id, None)
        if link.origin == Origin.QBO.value:
            self.host.upsert_invoice(self.tenant, replace(current, status=InvoiceStatus.DELETED, origin=Origin.QBO), Origin.QBO)
        else:
            self.host.update_invoice_status(self.tenant, link.crm_id, InvoiceStatus.DELETED, current.amount_paid)
        self.host_writes += 1
        return applied("invoice marked deleted")

    # ------------------------------------------------------------------ payments

    def apply_payment(self, payment_id: str) -> Outcome:
        """A payment changes its invoices' balances: re-read it and every invoice it links to."""
        try:
            payment = self.qbo.read("Payment", payment_id)
        except NotFoundError:
            return skipped("a deleted payment; its invoices report their new balances themselves")
        if self.connection is not None and not self._echo("Payment", payment):
            hooks.after_payment_applied(self.state, self.connection, payment, self._linked_contact(_customer_ref(payment)))
        invoice_ids: list[str] = []
        for line in payment.get("Line") or []:
            for linked in (line.get("LinkedTxn") or []) if isinstance(line, Mapping) else []:
                if isinstance(linked, Mapping) and linked.get("TxnType") == "Invoice" and linked.get("TxnId"):
                    invoice_ids.append(str(linked["TxnId"]))
        outcomes = []
        for invoice_id in dict.fromkeys(invoice_ids):
            try:
                outcomes.append(self.apply_invoice(self.qbo.read("Invoice", invoice_id)))
            except NotFoundError:
                outcomes.append(self.invoice_deleted(invoice_id))
        if any(o.status is InboxStatus.APPLIED for o in outcomes):
            return applied(f"payment applied to {len(outcomes)} invoice(s)")
        return skipped("the payment changed no linked invoice")
