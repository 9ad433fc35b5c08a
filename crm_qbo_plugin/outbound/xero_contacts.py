"""Contacts → Xero contacts: matched by e-mail then by name, else created; our edits pushed.

Like QuickBooks customers, a contact reaches Xero with its first billable activity (a sent invoice
or a payment: `ensure_contact`); contact events only update contacts already linked. A create
carries the row's Idempotency-Key (a retry within Xero's 6 minutes replays the answer) and the
CRM id as ContactNumber; a retry later finds the earlier create by e-mail or by its names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from typing import Any

from redis.exceptions import LockError

from crm_qbo_plugin.host import Contact, get_contacts
from crm_qbo_plugin.mapping.names import contact_name_candidates, valid_email
from crm_qbo_plugin.mapping.xero_contact import contact_body, contact_number, match_contact
from crm_qbo_plugin.mapping.xero_record import as_written
from crm_qbo_plugin.outbound.batching import LOOKUP, LOOKUP_WAIT_SECONDS
from crm_qbo_plugin.outbound.customers import contact_to_update, linked_or_new
from crm_qbo_plugin.outbound.failures import PushConflict, PushFailed
from crm_qbo_plugin.outbound.processor import Skip
from crm_qbo_plugin.outbound.xero_context import XeroPush
from crm_qbo_plugin.store.links import (
    CONTACT,
    DELETED,
    IGNORED,
    link_by_qbo_id,
    links_for,
    record_write,
    set_status,
)
from crm_qbo_plugin.store.tables import OutboxEvent
from crm_qbo_plugin.xero import (
    MAX_ELEMENTS,
    NotFoundError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
    ValidationError,
    XeroError,
)

ENTITY = "XeroContact"


def ensure_contact(push: XeroPush, contact_id: str) -> str:
    """The Xero ContactID for `contact_id`, linking or creating the contact when needed."""
    with push.lock(CONTACT, contact_id):
        linked = linked_or_new(push, contact_id, "Xero")
        if isinstance(linked, str):
            return linked
        contact, generation = linked
        found = _find_existing(push, contact)
        if found is not None:
            _record(push, contact.id, found)
            return str(found["ContactID"])
        return _create(push, contact, generation)


def ensure_contacts(push: XeroPush, first_rows: Mapping[str, OutboxEvent],
                    ahead: Callable[[set[str], int], list[str]] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """`ensure_contact` for a backlog's contacts (each keyed to the first outbox row naming it):
    ({contact id: ContactID}, {contact id: why its invoices wait for their own push}).

    The new ones whose push locks are free are matched with ONE lookup (their e-mails and names)
    and the unmatched created in ONE array write (`summarizeErrors=false`). `ahead(skip, want)`
    adds up to `want` unlinked contacts of the invoices waiting next, so the one lookup and the
    one array also serve the next batches (Xero's 60 calls a minute are then spent on invoices).
    One leader of the organisation at a time takes this step, so the next finds its contacts
    linked instead of racing for their locks. Any contact this cannot settle (a lock held
    elsewhere, a name Xero says is taken, a link in another state) goes through `ensure_contact`
    one by one, as the single path would."""
    ids: dict[str, str] = {}
    linked = _add_linked(push, list(first_rows), ids)
    new = [c for c in first_rows if c not in linked]
    if new:
        gate = push.wait_lock(LOOKUP, "contacts", LOOKUP_WAIT_SECONDS)
        if gate is not None:  # else each goes the single path below
            try:
                _link_step(push, new, set(first_rows), ahead, ids)
            finally:
                with suppress(LockError):
                    gate.release()
    trouble: dict[str, str] = {}
    for contact_id, row in first_rows.items():
        if contact_id in ids:
            continue
        try:
            ids[contact_id] = ensure_contact(replace(push, row=row, txn_date=None, doc_number=None), contact_id)
        except (XeroError, PushFailed) as exc:
            if isinstance(exc, ReconnectRequired | ThrottledError | TransientError):
                raise
            trouble[contact_id] = f"its contact could not be made in Xero ({type(exc).__name__})"
    return ids, trouble


def _add_linked(push: XeroPush, contact_ids: list[str], ids: dict[str, str]) -> set[str]:
    """Put the usable links of `contact_ids` in `ids`; the ids that have a link of any state."""
    links = links_for(push.state, push.tenant, CONTACT, contact_ids)
    for contact_id, link in links.items():
        if link.qbo_id and link.status not in (DELETED, IGNORED):
            ids[contact_id] = link.qbo_id
    return set(links)


def _link_step(push: XeroPush, new: list[str], skip: set[str], ahead: Callable[[set[str], int], list[str]] | None,
               ids: dict[str, str]) -> None:
    """Under the gate: the batch's contacts still unlinked (linked while we waited otherwise), and
    those `ahead` finds, matched or created in one lookup and one array."""
    todo = [c for c in new if c not in _add_linked(push, new, ids)][:MAX_ELEMENTS]
    if not todo:
        return
    if ahead is not None and len(todo) < MAX_ELEMENTS:
        todo += ahead(skip, MAX_ELEMENTS - len(todo))
    held = {c: lock for c in todo if (lock := push.try_lock(CONTACT, c)) is not None}
    try:
        _link_new(push, [c for c in held if c not in links_for(push.state, push.tenant, CONTACT, list(held))], ids)
    finally:
        for lock in held.values():
            with suppress(LockError):
                lock.release()


def _link_new(push: XeroPush, contact_ids: list[str], ids: dict[str, str]) -> None:
    """Match, else create in one array, the unlinked contacts whose locks are held. The array's
    Idempotency-Key is made from the leader's row and the contacts, so a retry of this step
    replays it within Xero's 6 minutes (later, the lookup finds what it made)."""
    contacts = [c for c in get_contacts(push.host, push.tenant, contact_ids).values()]
    if not contacts:
        return
    emails = list(dict.fromkeys(e for c in contacts if (e := valid_email(c.email))))
    names = list(dict.fromkeys(contact_name_candidates(push.tenant, c)[0] for c in contacts))
    candidates = push.xero.find_contacts_any(emails=emails, names=names)
    taken: set[str] = set()
    todo: list[Contact] = []
    for contact in contacts:
        free = [c for c in candidates if str(c.get("ContactID")) not in taken
                and _unlinked(push, str(c.get("ContactID")), contact.id)]
        match, _how = match_contact(contact, free)
        if match is None:
            todo.append(contact)
            continue
        taken.add(str(match["ContactID"]))
        _record(push, contact.id, match)
        ids[contact.id] = str(match["ContactID"])
    if not todo:
        return
    digest = hashlib.sha256("|".join([push.row.request_id, *(c.id for c in todo)]).encode()).hexdigest()[:32]
    bodies = [contact_body(c, contact_name_candidates(push.tenant, c)[0], number=contact_number(c.id)) for c in todo]
    for contact, saved in zip(todo, push.xero.save_contacts(bodies, request_id=f"xcs{digest}", create_only=True),
                              strict=True):
        if saved.ok:  # a refused one (e.g. its name is taken) goes through ensure_contact
            _record(push, contact.id, saved.element)
            ids[contact.id] = str(saved.element["ContactID"])


def _find_existing(push: XeroPush, contact: Contact) -> Mapping[str, Any] | None:
    """An active Xero contact with the contact's e-mail, else its name, not linked to another
    contact; on a retry also one carrying a name an earlier attempt may have created."""
    names = contact_name_candidates(push.tenant, contact)
    email = valid_email(contact.email)
    candidates = push.xero.find_contacts(email=email, name=names[0])
    if push.retried:
        for name in names[1:]:
            candidates += push.xero.find_contacts(name=name)
    free = [c for c in candidates if _unlinked(push, str(c.get("ContactID")), contact.id)]
    match, _how = match_contact(contact, free)
    if match is None and push.retried:
        mine = contact_number(contact.id)
        match = next((c for c in free if c.get("ContactNumber") == mine), None)
    return match


def _unlinked(push: XeroPush, xero_id: str, contact_id: str) -> bool:
    other = link_by_qbo_id(push.state, push.tenant, CONTACT, xero_id)
    return other is None or other.crm_id == contact_id


def _create(push: XeroPush, contact: Contact, generation: int) -> str:
    names = contact_name_candidates(push.tenant, contact)
    for index, name in enumerate(names):
        body = contact_body(contact, name, number=contact_number(contact.id))
        try:
            answer = push.xero.save_contact(body, request_id=push.rid(f"xc{index}", generation), create_only=True)
        except ValidationError as exc:
            if _name_taken(exc):
                continue  # the next, deterministic, candidate; never the same name twice
            raise
        _record(push, contact.id, answer)
        return str(answer["ContactID"])
    raise PushConflict(f"the name \"{names[0]}\" and its variants are used by other Xero contacts; "
                       "rename the contact in the CRM or in Xero, then retry")


def _holds(current: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """True when the Xero contact already carries every field of `body` (its phone as the
    DEFAULT phone): then an update would change nothing."""
    for key, value in body.items():
        if key == "Phones":
            default: Mapping[str, Any] = next((p for p in current.get("Phones") or [] if p.get("PhoneType") == "DEFAULT"), {})
            if default.get("PhoneNumber") != value[0]["PhoneNumber"]:
                return False
        elif current.get(key) != value:
            return False
    return True


def _name_taken(exc: ValidationError) -> bool:
    return any("contact name" in m.lower() and "already" in m.lower() for m in exc.messages)


def _record(push: XeroPush, contact_id: str, answer: Mapping[str, Any]) -> None:
    record_write(push.state, push.tenant, push.realm, CONTACT, contact_id, ENTITY, as_written(ENTITY, answer))


def push_contact(push: XeroPush) -> None:
    """contact.created / contact.updated: our fields on a linked Xero contact (under the contact's
    push lock, so an edit made while its create runs is not lost)."""
    with push.lock(CONTACT, push.row.subject_id):
        contact, xero_id, _sync_token = contact_to_update(push, "Xero", "Xero contact")
        _update(push, contact, xero_id)


def _update(push: XeroPush, contact: Contact, xero_id: str) -> None:
    try:
        current = push.xero.get_contact(xero_id)
    except NotFoundError:
        set_status(push.state, push.tenant, CONTACT, contact.id, DELETED, "deleted in Xero")
        raise Skip("the Xero contact is gone; it is created again with the contact's next billable activity") from None
    names = contact_name_candidates(push.tenant, contact)
    keep = str(current.get("Name")) if current.get("Name") in names else names[0]
    for index, name in enumerate([keep, *[n for n in names if n != keep]]):
        body = contact_body(contact, name)
        if index == 0 and _holds(current, body):
            _record(push, contact.id, current)
            raise Skip("nothing we own changed")
        try:
            answer = push.xero.save_contact({**body, "ContactID": xero_id}, request_id=push.rid(f"xcu{index}"))
        except ValidationError as exc:
            if _name_taken(exc):
                continue
            raise
        _record(push, contact.id, answer)
        return
    raise PushConflict(f"the name \"{names[0]}\" is used by another Xero contact; "
                       "rename the contact in the CRM or in Xero, then retry")
