"""Contacts → QBO customers: link by e-mail, create with a deterministic name, push our edits.

A contact becomes a customer when it has billable activity: `ensure_customer` is called by the
invoice and payment pushes. Contact events only update customers that are linked already.

A batch of invoice pushes looks up its new contacts' e-mails in one query, and that query also
covers the contacts of the invoices waiting next (up to 100 e-mails): the e-mails no QBO customer
has are noted in Redis for a short while (as hashes, never the addresses), so the next batches
create those customers without asking again. A note is used once: it is deleted before the create
it allowed, so a create whose answer was lost is found by e-mail on the next attempt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.host import Contact, Origin
from crm_qbo_plugin.mapping.customer import customer_fields
from crm_qbo_plugin.mapping.names import contact_name_candidates, valid_email
from crm_qbo_plugin.mapping.owned import owned_hash
from crm_qbo_plugin.outbound.context import Push, RecordPush
from crm_qbo_plugin.outbound.failures import PushConflict, PushFailed
from crm_qbo_plugin.outbound.processor import Skip
from crm_qbo_plugin.qbo import (
    DuplicateNameError,
    NotFoundError,
    StaleObjectError,
    build_select,
    eq,
    in_,
)
from crm_qbo_plugin.store.links import (
    CONTACT,
    DELETED,
    IGNORED,
    PENDING,
    SYNCED,
    get_link,
    link_by_qbo_id,
    record_write,
    set_status,
)

EMAILS_PER_QUERY = 100
ABSENT_NOTE_SECONDS = 120  # how long "no QBO customer has this e-mail" is trusted


def linked_or_new(push: RecordPush, contact_id: str, books: str) -> str | tuple[Contact, int]:
    """Under the contact's push lock: its id in `books` ("QuickBooks", "Xero") when linked, else
    the CRM contact to link or create and the link generation its create uses (a contact deleted
    there starts a new one); PushFailed for one ignored on the card or gone from the CRM."""
    link = get_link(push.state, push.tenant, CONTACT, contact_id)
    if link is not None and link.status == IGNORED:
        raise PushFailed(f"its contact is set to ignored on the {books} card; retry the contact first")
    if link is not None and link.qbo_id and link.status != DELETED:
        return link.qbo_id
    generation = link.generation if link is not None else 0
    if link is not None and link.status == DELETED:
        generation = set_status(push.state, push.tenant, CONTACT, contact_id, PENDING,
                                clear_qbo=True, bump_generation=True).generation
    contact = push.host.get_contact(push.tenant, contact_id)
    if contact is None:
        raise PushFailed("its contact is no longer in the CRM")
    return contact, generation


def ensure_customer(push: Push, contact_id: str, currency: str | None = None) -> str:
    """The QBO customer id for `contact_id`, linking or creating the customer when needed."""
    with push.lock(CONTACT, contact_id):
        linked = linked_or_new(push, contact_id, "QuickBooks")
        if isinstance(linked, str):
            return linked
        contact, generation = linked
        found = _find_existing(push, contact)
        if found is not None:
            return _adopt(push, contact, found)
        return _create(push, contact, currency, generation)


def _unlinked(push: Push, row: dict[str, Any], contact_id: str) -> bool:
    other = link_by_qbo_id(push.state, push.tenant, CONTACT, str(row["Id"]))
    return other is None or other.crm_id == contact_id


def _find_existing(push: Push, contact: Contact) -> dict[str, Any] | None:
    """An active QBO customer with the contact's e-mail (case-insensitive), not linked to another
    contact; on a retry without e-mail, one carrying a name an earlier attempt may have created."""
    email = valid_email(contact.email)
    if email:
        return _pick_by_email(push, contact, push.qbo.query(build_select("Customer", [eq("PrimaryEmailAddr", email)])))
    if push.retried:
        for name in contact_name_candidates(push.tenant, contact):
            for row in push.qbo.query(build_select("Customer", [eq("DisplayName", name)])):
                if not (row.get("PrimaryEmailAddr") or {}).get("Address") and _unlinked(push, row, contact.id):
                    return row
    return None


def _pick_by_email(push: Push, contact: Contact, rows: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The oldest of `rows` carrying the contact's e-mail (case-insensitive) and not linked to
    another contact."""
    email = (valid_email(contact.email) or "").casefold()
    matches = [r for r in rows if email and str((r.get("PrimaryEmailAddr") or {}).get("Address", "")).casefold() == email]
    for row in sorted(matches, key=lambda r: int(r["Id"]) if str(r["Id"]).isdigit() else 0):
        if _unlinked(push, row, contact.id):
            return row
    return None


def customers_by_email(push: Push, contacts: Sequence[Contact], ahead: Sequence[Contact] = ()) -> list[dict[str, Any]]:
    """QBO's customers carrying any of the contacts' e-mails: one query per 100 e-mails. E-mails
    of `ahead` (contacts about to be pushed) fill the last query's spare room; those found on no
    customer are noted (`absent_emails`), so their own push need not ask again."""
    emails = sorted({e for c in contacts if (e := valid_email(c.email))})
    room = -len(emails) % EMAILS_PER_QUERY if emails else EMAILS_PER_QUERY
    asked = {e.casefold() for e in emails}
    extra: dict[str, Contact] = {}
    for contact in ahead:
        email = valid_email(contact.email)
        if email and email.casefold() not in asked and len(extra) < room:
            asked.add(email.casefold())
            extra[email] = contact
    wanted = emails + list(extra)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(wanted), EMAILS_PER_QUERY):
        rows.extend(push.qbo.query(build_select("Customer", [in_("PrimaryEmailAddr", wanted[start:start + EMAILS_PER_QUERY])])))
    found = {str((r.get("PrimaryEmailAddr") or {}).get("Address", "")).casefold() for r in rows}
    note_absent(push, [(e, c.id) for e, c in extra.items() if e.casefold() not in found])
    return rows


def _absent_key(push: Push, email: str) -> str:
    digest = hashlib.sha256(f"{push.tenant}|{push.realm}|{email.casefold()}".encode()).hexdigest()[:40]
    return f"crm-qbo:push:{push.tenant}:absent-email:{digest}"


# Set each note unless its contact's push lock is held: a worker holding it may be creating the
# customer right now, after our query, and the note would then be wrong.
_NOTE = """
local n = #KEYS / 2
for i = 1, n do
  if redis.call('EXISTS', KEYS[n + i]) == 0 then
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[1])
  end
end
return n
"""


def note_absent(push: Push, found_on_none: Sequence[tuple[str, str]]) -> None:
    """Remember for a short while that no QBO customer carries these e-mails ((e-mail, contact id)
    pairs; a contact being pushed right now is skipped)."""
    if not found_on_none:
        return
    keys = [_absent_key(push, email) for email, _c in found_on_none]
    keys += [push.lock_key(CONTACT, contact_id) for _e, contact_id in found_on_none]
    push.state.redis.register_script(_NOTE)(keys=keys, args=[ABSENT_NOTE_SECONDS])


def absent_emails(push: Push, emails: Sequence[str]) -> set[str]:
    """Which of `emails` a recent lookup found on no QBO customer (case-insensitive)."""
    if not emails:
        return set()
    values = push.state.redis.mget([_absent_key(push, e) for e in emails])
    return {e.casefold() for e, value in zip(emails, values, strict=True) if value is not None}


def forget_absent(push: Push, email: str | None) -> bool:
    """Use up the note for `email` (before creating its customer); True if there was one."""
    return bool(email) and bool(push.state.redis.delete(_absent_key(push, str(email))))


def link_new_customer(push: Push, contact: Contact, found: Iterable[dict[str, Any]]) -> str:
    """`ensure_customer` for a contact that has no link yet, when the caller already queried the
    customers with its e-mail (`found`): adopt the matching one, else create it. The caller holds
    the contact's push lock; `push` is the row the customer is for (its requestids are used)."""
    match = _pick_by_email(push, contact, found)
    if match is not None:
        return _adopt(push, contact, match)
    return _create(push, contact, None, 0)


def _fields(push: Push, contact: Contact, display: str, currency: str | None = None) -> dict[str, Any]:
    """The Customer fields for `contact`, with the card's field mapping applied (the one place it is)."""
    return customer_fields(contact, display, currency, push.settings.field_mapping)


def _adopt(push: Push, contact: Contact, row: dict[str, Any]) -> str:
    """Link an existing customer and bring our fields up to date (keeping its DisplayName)."""
    fields = _fields(push, contact, str(row.get("DisplayName", "")))
    merged = {**row, **fields}
    if owned_hash("Customer", merged) == owned_hash("Customer", row):
        record_write(push.state, push.tenant, push.realm, CONTACT, contact.id, "Customer", row)
        return str(row["Id"])
    fields.pop("DisplayName")
    body = {**fields, "Id": row["Id"], "SyncToken": row["SyncToken"]}
    try:
        answer = push.qbo.update("Customer", body, push.rid("cuadopt"))
    except StaleObjectError:
        fresh = push.qbo.read("Customer", row["Id"])
        answer = push.qbo.update("Customer", {**body, "SyncToken": fresh["SyncToken"]}, push.rid("cuadopt2"))
    record_write(push.state, push.tenant, push.realm, CONTACT, contact.id, "Customer", answer)
    return str(answer["Id"])


def _create(push: Push, contact: Contact, currency: str | None, generation: int) -> str:
    names = contact_name_candidates(push.tenant, contact)
    forget_absent(push, valid_email(contact.email))  # if this answer is lost, the retry must ask QBO
    for index, name in enumerate(names):
        try:
            answer = push.qbo.create("Customer", _fields(push, contact, name, currency),
                                     push.rid(f"cu{index}", generation))
        except DuplicateNameError:
            made = _made_meanwhile(push, contact)
            if made is not None:
                return made
            continue  # the next, deterministic, candidate; never the same name twice
        record_write(push.state, push.tenant, push.realm, CONTACT, contact.id, "Customer", answer)
        return str(answer["Id"])
    raise PushConflict(f"the name \"{names[0]}\" and its variants are used by other QuickBooks customers, "
                       "vendors or employees; rename the contact or the QuickBooks record, then retry")


def _made_meanwhile(push: Push, contact: Contact) -> str | None:
    """The contact's customer if another push made (or linked) it while ours waited, else None.

    A name clash is usually someone else's customer, but it can be this contact's own: the push
    lock lives in Redis, and a Redis restart drops it while a push waits (e.g. out QuickBooks'
    throttling), so another push of the contact may have run alongside. The link in the database
    and the e-mail tell, before a second customer "Name (2)" is made."""
    link = get_link(push.state, push.tenant, CONTACT, contact.id)
    if link is not None and link.qbo_id and link.status != DELETED:
        return link.qbo_id
    found = _find_existing(push, contact) if valid_email(contact.email) else None
    return _adopt(push, contact, found) if found is not None else None


def push_contact(push: Push) -> None:
    """contact.created / contact.updated: a sparse update of our fields on a linked customer.

    The link is read under the contact's push lock: a worker making the customer right now holds
    it, so this waits and then updates the new customer, instead of finding no link and skipping
    an edit the create read too early to carry."""
    with push.lock(CONTACT, push.row.subject_id):
        contact, qbo_id, sync_token = contact_to_update(push, "QuickBooks", "QuickBooks customer")
        _update(push, contact, qbo_id, sync_token or "0")


def contact_to_update(push: RecordPush, books: str, record: str) -> tuple[Contact, str, str | None]:
    """For contact.created / contact.updated, under the contact's push lock: the CRM contact, the
    id of its `record` ("QuickBooks customer", "Xero contact") in `books` and the link's sync token;
    Skip when there is nothing to update (ignored, not linked yet, just made from these details, gone)."""
    link = get_link(push.state, push.tenant, CONTACT, push.row.subject_id)
    if link is not None and link.status == IGNORED:
        raise Skip(f"ignored on the {books} card")
    if link is None or not link.qbo_id or link.status == DELETED:
        raise Skip(f"no billable activity yet (no payment or sent invoice): not a {record}")
    if push.row.event_type == EventType.CONTACT_CREATED.value and link.origin == Origin.CRM.value \
            and link.status == SYNCED:
        # Our push made (or adopted) the record from the contact as it was then, which is after
        # it was created; later edits come as contact.updated events.
        raise Skip(f"its {record} was made from this contact's details")
    contact = push.host.get_contact(push.tenant, push.row.subject_id)
    if contact is None:
        raise Skip("the contact is no longer in the CRM")
    return contact, link.qbo_id, link.sync_token


def _update(push: Push, contact: Contact, qbo_id: str, sync_token: str) -> None:
    try:
        current = push.qbo.read("Customer", qbo_id)
    except NotFoundError:
        set_status(push.state, push.tenant, CONTACT, contact.id, DELETED, "deleted in QuickBooks")
        raise Skip("the QuickBooks customer is gone; it is created again with the contact's next billable activity") from None
    names = contact_name_candidates(push.tenant, contact)
    keep = current.get("DisplayName") if current.get("DisplayName") in names else names[0]
    fields = _fields(push, contact, str(keep))
    if owned_hash("Customer", {**current, **fields}) == owned_hash("Customer", current):
        record_write(push.state, push.tenant, push.realm, CONTACT, contact.id, "Customer", current)
        raise Skip("nothing we own changed")
    for index, name in enumerate([str(keep), *[n for n in names if n != keep]]):
        body = {**_fields(push, contact, name), "Id": qbo_id, "SyncToken": current["SyncToken"]}
        try:
            answer = push.qbo.update("Customer", body, push.rid(f"cuu{index}"))
        except DuplicateNameError:
            continue
        record_write(push.state, push.tenant, push.realm, CONTACT, contact.id, "Customer", answer)
        return
    raise PushConflict(f"the name \"{names[0]}\" is used by another QuickBooks customer, vendor or employee; "
                       "rename the contact or the QuickBooks record, then retry")
