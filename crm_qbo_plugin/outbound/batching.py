"""Backlog drain: when many invoices of one tenant wait, one job sends up to 30 creates at once.

A job for an `invoice.sent` row (first attempt) whose invoice is a plain first create becomes the
batch's leader. It first claims up to 29 other never-tried `invoice.sent` rows of the tenant in ONE
conditional UPDATE (so two leaders never claim the same row and each gets a full batch), then makes
them ready: their new contacts are linked or created (one e-mail query for them all, see
customers.py), missing items created, and the leader sends them with its own row as ONE `/batch`
call: one request instead of 30 against QBO's 500/minute. Each answer is recorded on its own row
(links and ledger of the whole batch in one transaction): a created invoice is linked and its row
done; a per-item fault fails or retries that row alone.

A claimed row that cannot go in a batch (a contact without e-mail, one another worker is pushing,
a foreign currency, a void…) is handed back untouched (attempts as before) with the reason in
`last_error`: batches skip it and its own job takes the single path. A contact another worker is
pushing is waited for a few seconds first, as that worker is usually creating it right now.

Crash safety: every batched invoice's link is set pending before the call, so if the worker dies
after QBO answered, the rows' next attempt looks for the invoice by its CRM marker before creating.

The leader itself (`lead_batch`: claim, hand-back, invoice locks, cancelled jobs) knows no
accounting system: a `BatchPlan` brings which row may lead, how members are made ready and the one
request. `QBO_BATCH` here is QuickBooks'; `xero_batching.XERO_BATCH` is Xero's (arrays of 50).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from crm_qbo_plugin import metrics
from crm_qbo_plugin.host import Contact, Invoice, get_contacts, get_invoices
from crm_qbo_plugin.mapping.invoice import MappingError, currency_problem, invoice_body, line_keys
from crm_qbo_plugin.mapping.names import doc_number, valid_email
from crm_qbo_plugin.outbound.context import Push, RecordPush
from crm_qbo_plugin.outbound.customers import (
    EMAILS_PER_QUERY,
    absent_emails,
    customers_by_email,
    forget_absent,
    link_new_customer,
)
from crm_qbo_plugin.outbound.decision import batchable
from crm_qbo_plugin.outbound.failures import PushFailed
from crm_qbo_plugin.outbound.invoices import (
    body_digest,
    push_invoice,
    undo_second_copy,
    write_with_total,
)
from crm_qbo_plugin.outbound.items import ensure_items, linked_item_ids
from crm_qbo_plugin.outbound.processor import settle_failure
from crm_qbo_plugin.outbound.tracking import show_failure
from crm_qbo_plugin.qbo import MAX_BATCH_ITEMS, BatchItem, QboError
from crm_qbo_plugin.runtime.queue import cancel_outbox, enqueue_outbox
from crm_qbo_plugin.store import outbox
from crm_qbo_plugin.store.links import (
    CONTACT,
    INVOICE,
    PENDING,
    SYNCED,
    get_link,
    links_for,
    record_writes,
    set_statuses,
)
from crm_qbo_plugin.store.outbox import PROCESSING_LEASE
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

BATCH_MIN = 3  # below this a batch saves too little to be worth it
CONTACT_WAIT_SECONDS = 5.0  # how long a leader waits for a contact another worker is pushing
LOOKAHEAD_ROWS = 1000  # waiting rows scanned for the contacts an e-mail query also covers
LOOKUP = "customer_step"  # the push lock kind that lets one leader of a tenant at a time make customers (contacts)
LOOKUP_WAIT_SECONDS = 10.0
SINGLE_PATH = "left to the single path: "
# How long a batch holds its members' rows and invoice locks: past the limiter's longest wait for
# a batch slot (10 minutes) plus QBO's longest request, so no row is recovered and pushed again
# by another worker while its batch may still be sent.
BATCH_HOLD = max(PROCESSING_LEASE, timedelta(minutes=15))


@dataclass(frozen=True)
class Ready:
    row: OutboxEvent
    invoice: Invoice
    body: dict[str, Any]


Unfit = tuple[OutboxEvent, str]


P = TypeVar("P", bound=RecordPush)
T = TypeVar("T")


@dataclass(frozen=True)
class BatchPlan(Generic[P]):
    """What one accounting system brings to the batch leader; the claim, the hand-back, the
    invoice locks and the cancelled jobs are the leader's own (`lead_batch`)."""

    size: int  # invoices per request, the leader's included
    leader: Callable[[P], Invoice | None]  # the leader row's invoice if it can lead (nothing claimed yet)
    prepare: Callable[[P, Invoice, list[OutboxEvent]], tuple[list[Ready], list[Unfit]]]
    send: Callable[[P, list[Ready]], None]  # one request; every member's outcome on its own row


def push_invoice_or_batch(push: Push) -> None:
    """A first attempt leads a batch only when a backlog waits (one read, no claim, no host reads
    otherwise); everything else takes the single path."""
    if lead_batch(push, QBO_BATCH):
        return
    push_invoice(push)


def lead_batch(push: P, plan: BatchPlan[P]) -> bool:
    """Lead a batch when the row is a first attempt and a backlog waits; False when there is no
    batch worth sending (the row then takes the single path)."""
    return push.row.attempts == 1 and backlog(push) and _batch(push, plan)


def backlog(push: RecordPush) -> bool:
    """Whether enough other first sends wait to make a batch worth it."""
    return outbox.backlog(push.state.engine, push.tenant, push.row.id, push.conn.connected_at, BATCH_MIN - 1)


def eligible(push: Push, invoice: Invoice | None) -> Invoice | None:
    """`invoice` if it is a first create that can go in a batch as is (foreign currency, voided,
    not yet sent, before the connection or the sync start date, automatic export off: the single
    path decides)."""
    if invoice is None:
        return None
    company = push.company
    fits = batchable(invoice, push.conn.connected_at, push.settings.sync_from, company.home_currency,
                     currency_problem(invoice.currency, company), push.settings.export_on_send)
    return invoice if fits else None


def _batch(push: P, plan: BatchPlan[P]) -> bool:
    """Send the leader row with up to `plan.size - 1` claimed rows; False when there is no batch
    worth sending (every claimed row is handed back then)."""
    leader = plan.leader(push)
    if leader is None:
        return False
    members = claim(push, plan.size - 1)
    with suppress(RedisError):  # else their jobs run and find their rows claimed
        # Their jobs would only find the rows held by this batch; a row handed back is queued again.
        cancel_outbox(push.state.queue, [r.id for r in members if r.id is not None])
    if len(members) + 1 < BATCH_MIN:
        release(push, members)
        return False
    # The invoices' push locks, as the single path takes them: an update or a retry of one of
    # them running elsewhere must not create it while the batch does.
    token, held = push.try_lock_many(INVOICE, [push.row.subject_id, *(r.subject_id for r in members)],
                                     int(BATCH_HOLD.total_seconds()))
    try:
        return _batch_locked(push, plan, leader, members, set(held))
    finally:
        push.unlock_many(INVOICE, held, token)


def _batch_locked(push: P, plan: BatchPlan[P], leader: Invoice, members: list[OutboxEvent], held: set[str]) -> bool:
    if push.row.subject_id not in held:
        release(push, members)
        return False
    busy = [r for r in members if r.subject_id not in held]
    members = [r for r in members if r.subject_id in held]
    for row in busy:
        release(push, [row], SINGLE_PATH + "another worker is pushing this invoice")
    try:
        ready, unfit = plan.prepare(push, leader, members)
    except BaseException:
        release(push, members)
        raise
    for row, reason in unfit:
        if row is not push.row:
            release(push, [row], SINGLE_PATH + reason if reason else None)
    if not ready or ready[0].row is not push.row or len(ready) < BATCH_MIN:
        release(push, [m.row for m in ready if m.row is not push.row])
        return False
    plan.send(push, ready)
    return True


def leader_invoice(push: P, eligible: Callable[[P, Invoice | None], Invoice | None],
                   findable: Callable[[Contact], bool]) -> Invoice | None:
    """The leader row's invoice if it is a first create `eligible` accepts whose contact is linked,
    or new and `findable` (checked before claiming anything, so an unfit row never holds others)."""
    if get_link(push.state, push.tenant, INVOICE, push.row.subject_id) is not None:
        return None
    invoice = eligible(push, push.host.get_invoice(push.tenant, push.row.subject_id))
    if invoice is None:
        return None
    link = get_link(push.state, push.tenant, CONTACT, invoice.contact_id)
    if link is not None:
        return invoice if link.status == SYNCED and link.qbo_id else None
    contact = push.host.get_contact(push.tenant, invoice.contact_id)
    return invoice if contact is not None and findable(contact) else None


def _leader(push: Push) -> Invoice | None:
    """A leader whose new contact can be looked up by e-mail (QuickBooks' customers are)."""
    return leader_invoice(push, eligible, lambda contact: bool(valid_email(contact.email)))


def claim(push: RecordPush, limit: int) -> list[OutboxEvent]:
    """Claim up to `limit` waiting first sends of the tenant, held `BATCH_HOLD` long."""
    return outbox.claim_batch(push.state.engine, push.tenant, push.row.id, push.conn.connected_at, limit, BATCH_HOLD)


def release(push: RecordPush, rows: Sequence[OutboxEvent], reason: str | None = None) -> None:
    """Hand claimed rows back, due now, and queue their jobs again (the claim took them out; if
    Redis refuses, the sweeper queues them, their lease having run out)."""
    outbox.release(push.state.engine, rows, reason)
    with suppress(RedisError):
        for row in rows:
            if row.id is not None:
                enqueue_outbox(push.state.queue, row.id)


def finish_many(push: RecordPush, rows: Sequence[OutboxEvent], status: OutboxStatus, error: str | None = None,
                 retry_at: datetime | None = None) -> None:
    outbox.finish_many(push.state.engine, rows, status, error, retry_at)
    metrics.count(push.state.redis, "pushes", len(rows), outcome=status.value)
    metrics.count(push.state.redis, "failures", len(rows) * (status is OutboxStatus.FAILED), kind="outbox_failed")


def choose(push: P, leader: Invoice, members: list[OutboxEvent],
           eligible: Callable[[P, Invoice | None], Invoice | None]) -> tuple[list[tuple[OutboxEvent, Invoice]], list[Unfit]]:
    """The rows (the leader's first) whose invoices are still first creates `eligible` accepts,
    with their invoices; the others with why. Nothing is chosen when the leader's invoice was
    pushed by someone else since it was looked at (every member is then handed back as it was)."""
    unfit: list[Unfit] = []
    linked = links_for(push.state, push.tenant, INVOICE, [push.row.subject_id, *(r.subject_id for r in members)])
    if push.row.subject_id in linked:  # pushed by someone else since we looked (now under its lock)
        return [], [(r, "") for r in members]  # handed back as they were
    chosen: list[tuple[OutboxEvent, Invoice]] = [(push.row, leader)]
    taken = {leader.id}
    invoices = get_invoices(push.host, push.tenant, [r.subject_id for r in members if r.subject_id not in linked])
    for row in members:
        if row.subject_id in linked or row.subject_id in taken:
            unfit.append((row, "the invoice is linked already or has another row in the batch"))
            continue
        invoice = eligible(push, invoices.get(row.subject_id))
        if invoice is None:
            unfit.append((row, "not a first create in the home currency"))
            continue
        taken.add(invoice.id)
        chosen.append((row, invoice))
    return chosen, unfit


def request_id_of(members: Sequence[Ready]) -> str:
    """One request's id from its members' (so a retry of the same batch replays the same write)."""
    return hashlib.sha256("|".join(m.row.request_id for m in members).encode()).hexdigest()[:32]


def _prepare(push: Push, leader: Invoice, members: list[OutboxEvent]) -> tuple[list[Ready], list[Unfit]]:
    """Create bodies for the rows whose customer and items are (made) linked; the others with why."""
    chosen, unfit = choose(push, leader, members, eligible)
    if not chosen:
        return [], unfit
    customers, contact_trouble = _customers(push, chosen)
    items, item_trouble = _items(push, chosen)
    ready: list[Ready] = []
    for row, invoice in chosen:
        wanted = line_keys(invoice.lines)
        reason = contact_trouble.get(invoice.contact_id) or next(
            (item_trouble[k] for k in wanted if k in item_trouble), None)
        customer = customers.get(invoice.contact_id)
        if reason is None and (customer is None or any(k not in items for k in wanted)):
            reason = "its customer or products are not linked"
        if reason is None and customer is not None:
            try:
                ready.append(Ready(row, invoice, invoice_body(push.tenant, invoice, push.company, customer,
                                                              {k: items[k] for k in wanted})))
                continue
            except MappingError as exc:
                reason = str(exc)
        unfit.append((row, reason or "not ready"))
    return ready, unfit


def _customers(push: Push, chosen: list[tuple[OutboxEvent, Invoice]]) -> tuple[dict[str, str], dict[str, str]]:
    """({contact id: QBO customer id}, {contact id: why its invoices go the single path}).

    New contacts with an e-mail are linked or created here, under their push locks. One leader
    of the tenant at a time does this step (its e-mail query also covers the contacts waiting
    next, so a leader that waited finds its e-mails answered), and no batch creates a customer
    while another's query runs. Contacts whose lock another worker holds (usually creating them
    right now) are waited for afterwards, one by one."""
    contact_ids = list(dict.fromkeys(invoice.contact_id for _row, invoice in chosen))
    links = links_for(push.state, push.tenant, CONTACT, contact_ids)
    ids = {c: link.qbo_id for c, link in links.items() if link.qbo_id and link.status == SYNCED}
    trouble = {c: f"its contact's QuickBooks link is {link.status}" for c, link in links.items() if c not in ids}
    new = [c for c in contact_ids if c not in links]
    if not new:
        return ids, trouble
    row_of: dict[str, OutboxEvent] = {}
    for row, invoice in chosen:
        row_of.setdefault(invoice.contact_id, row)
    held: dict[str, Lock] = {}
    gate = push.wait_lock(LOOKUP, "customers", LOOKUP_WAIT_SECONDS)
    try:
        if gate is not None:
            held = {c: lock for c in new if (lock := push.try_lock(CONTACT, c)) is not None}
            try:
                _link_contacts(push, list(held), row_of, ids, trouble, look_ahead=True)
            finally:
                _unlock(held.values())
    finally:
        if gate is not None:
            _unlock([gate])
    for c in new:
        if c in held:
            continue
        lock = push.wait_lock(CONTACT, c, CONTACT_WAIT_SECONDS)
        if lock is None:
            trouble[c] = "another worker is pushing its contact"
            continue
        try:
            _link_contacts(push, [c], row_of, ids, trouble, look_ahead=False)
        finally:
            _unlock([lock])
    return ids, trouble


def _unlock(locks: Iterable[Lock]) -> None:
    for lock in locks:
        with suppress(LockError):  # expired while we worked: nothing to release
            lock.release()


def _link_contacts(push: Push, contact_ids: list[str], row_of: dict[str, OutboxEvent], ids: dict[str, str],
                   trouble: dict[str, str], *, look_ahead: bool) -> None:
    """Link or create the customers of `contact_ids` (their locks are held). Each create uses the
    requestids of the first row naming the contact, so that row's own retry replays it."""
    if not contact_ids:
        return
    fresh = links_for(push.state, push.tenant, CONTACT, contact_ids)  # linked while we locked
    contacts = get_contacts(push.host, push.tenant, [c for c in contact_ids if c not in fresh])
    todo: list[Contact] = []
    for c in contact_ids:
        link = fresh.get(c)
        if link is not None:
            if link.qbo_id and link.status == SYNCED:
                ids[c] = link.qbo_id
            else:
                trouble[c] = f"its contact's QuickBooks link is {link.status}"
            continue
        contact = contacts.get(c)
        if contact is None or not valid_email(contact.email):
            trouble[c] = "its contact has no e-mail to find its QuickBooks customer by"
            continue
        todo.append(contact)
    if not todo:
        return
    absent = absent_emails(push, _emails(todo))
    ask = [c for c in todo if str(valid_email(c.email)).casefold() not in absent]
    found = customers_by_email(push, ask, _ahead(push, {c.id for c in todo}) if look_ahead else ()) if ask else []
    for contact in todo:
        email = str(valid_email(contact.email))
        rows = found
        if email.casefold() in absent and not forget_absent(push, email):
            rows = customers_by_email(push, [contact])  # the note ran out meanwhile: ask now
        member = replace(push, row=row_of[contact.id], txn_date=None, doc_number=None)
        try:
            ids[contact.id] = link_new_customer(member, contact, rows)
        except (QboError, PushFailed) as exc:
            if isinstance(exc, QboError) and exc.retryable:
                raise
            log.info("outbound.batch_customer_deferred error=%s", type(exc).__name__)
            trouble[contact.id] = f"its customer could not be made ({type(exc).__name__})"


def _emails(contacts: Sequence[Contact]) -> list[str]:
    return [e for c in contacts if (e := valid_email(c.email))]


def _ahead(push: Push, skip: set[str]) -> list[Contact]:
    """Unlinked contacts of the invoices waiting next whose e-mails no recent query covered (up to
    one query's worth), so the e-mail query made now covers the next batches' new contacts too."""
    return contacts_ahead(push, skip, EMAILS_PER_QUERY, lambda contact_ids: _unnoted(push, contact_ids))


def contacts_ahead(push: RecordPush, skip: set[str], want: int, keep: Callable[[list[str]], list[T]],
                   fits: Callable[[Invoice], bool] = lambda _invoice: True) -> list[T]:
    """Up to `want` of the contacts `keep` returns for the contact ids of the invoices waiting next
    (first sends of the tenant that `fits`, in the order they wait), ids in `skip` left out.

    Rows are read galloping: the step doubles while the same contact comes back and falls to one
    when another appears, so a run of one contact's invoices costs a few reads, not one each. A
    contact missed in a skipped stretch is only looked up later, by its own batch."""
    subjects = outbox.first_send_subjects(push.state.engine, push.tenant, push.row.id, push.conn.connected_at,
                                          LOOKAHEAD_ROWS)
    ahead: list[T] = []
    seen = set(skip)
    pending: list[str] = []
    index, step, last = 0, 1, None
    while index < len(subjects) and len(ahead) < want:
        invoice = push.host.get_invoice(push.tenant, subjects[index])
        contact_id = invoice.contact_id if invoice is not None and fits(invoice) else None
        step = step * 2 if contact_id is not None and contact_id == last else 1
        last = contact_id
        if contact_id is not None and contact_id not in seen:
            seen.add(contact_id)
            pending.append(contact_id)
        index += step
        if len(pending) >= want - len(ahead) or (pending and index >= len(subjects)):
            ahead.extend(keep(pending))
            pending = []
    return ahead


def _unnoted(push: Push, contact_ids: list[str]) -> list[Contact]:
    """The unlinked ones of `contact_ids` whose e-mails are not noted absent already."""
    linked = links_for(push.state, push.tenant, CONTACT, contact_ids)
    found = get_contacts(push.host, push.tenant, [c for c in contact_ids if c not in linked])
    contacts = [contact for contact in found.values() if valid_email(contact.email)]
    noted = absent_emails(push, _emails(contacts))
    return [c for c in contacts if str(valid_email(c.email)).casefold() not in noted]


def _items(push: Push, chosen: list[tuple[OutboxEvent, Invoice]]) -> tuple[dict[str, str], dict[str, str]]:
    """({item key: QBO Item id}, {item key: why its invoices go the single path}): linked items,
    and the missing ones found or created as the single path would (under the leader's row)."""
    keys = {key: None for _row, invoice in chosen for key in line_keys(invoice.lines)}
    items = linked_item_ids(push, list(keys))
    trouble: dict[str, str] = {}
    for _row, invoice in chosen:
        missing = [k for k in line_keys(invoice.lines) if k not in items and k not in trouble]
        if not missing:
            continue
        try:
            items.update(ensure_items(push, invoice.lines))
        except (QboError, PushFailed) as exc:
            if isinstance(exc, QboError) and exc.retryable:
                raise
            trouble.update({k: f"its product could not be made ({type(exc).__name__})" for k in missing})
    return items, trouble


def _send(push: Push, members: list[Ready]) -> None:
    """One `/batch` call for the members (the leader first), each answer recorded on its row."""
    leader, claimed = members[0], members[1:]
    now = utcnow()
    set_statuses(push.state, push.tenant, INVOICE, [m.invoice.id for m in members], PENDING)
    try:
        results = push.qbo.batch([BatchItem.create("Invoice", m.body) for m in members], request_id=request_id_of(members))
    except Exception as exc:
        # QBO may have made them: their next attempt looks for each invoice by its marker first.
        finish_many(push, [m.row for m in claimed], OutboxStatus.PENDING, f"batch failed: {type(exc).__name__}", now)
        raise
    log.info("outbound.batch_sent invoices=%d", len(members))
    leader_error: QboError | None = None
    created, failed = [], []
    for member, result in zip(members, results, strict=True):
        if result.ok and result.entity is not None:
            created.append((member, result.entity))
        elif member is leader:
            leader_error = result.error or QboError("no answer for this invoice in the batch")
        else:
            failed.append((member, result.error or QboError("no answer for this invoice in the batch")))
    recorded = record_writes(push.state, push.tenant, push.realm, INVOICE, "Invoice", [
        write_with_total(m.invoice.id, entity, m.invoice.total, body_digest(m.body), created=True)
        for m, entity in created])
    for (_member, entity), link in zip(created, recorded, strict=True):
        if link.qbo_id != str(entity["Id"]):
            undo_second_copy(push, entity)
    finish_many(push, [m.row for m, _entity in created if m is not leader], OutboxStatus.DONE)
    for member, error in failed:
        _record_item_failure(push, member, error)
    if leader_error is not None:
        raise leader_error


def _record_item_failure(push: Push, member: Ready, error: QboError) -> None:
    """A member QBO refused: its link and row end as a single push failing the same way would."""
    shown = show_failure(push.state, push.tenant, INVOICE, member.invoice.id, error, "invoice",
                         member.invoice.issue_date, doc_number(member.invoice.number))
    settle_failure(push.state, member.row, push.conn, shown, utcnow())


QBO_BATCH: BatchPlan[Push] = BatchPlan(MAX_BATCH_ITEMS, _leader, _prepare, _send)

__all__ = ["BATCH_MIN", "LOOKUP", "LOOKUP_WAIT_SECONDS", "BatchPlan", "Ready", "backlog", "choose", "claim",
           "contacts_ahead", "eligible", "finish_many", "lead_batch", "leader_invoice", "push_invoice_or_batch",
           "release", "request_id_of"]
