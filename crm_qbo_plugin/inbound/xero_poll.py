"""The modified-since poll of a Xero organisation: contacts and invoices made or changed in Xero
come to the CRM (new contacts created, changed ones updated; invoices made in Xero imported when
"Import invoices" is on; a payment or void of an invoice the CRM sent reaches that invoice). Xero's
webhook notices (web/xero_webhooks.py) wait in the same inbox as QuickBooks' and queue a poll, which
settles them after its read: a notice about a record the read brought is settled with what the read
did with that record when the read saw the change it announces — the notice arrived before the read
began, or the version read is at least as new as the notice's event date (both Xero's clock); any
other is re-read by id (a notice is not data). A burst then costs one modified-since read.

Each poll reads the contacts, then the invoices, modified since their watermarks (oldest first,
`If-Modified-Since`), under the organisation's realm lock (one poll of a company at a time: renewed
before each page and notice is applied; a poll whose lock ran out while Xero's limits made it wait,
and was taken by another poll, stops there and leaves the rest to that one), and
applies them through the XeroApplier (the QuickBooks Applier's rules, Xero's record shapes). A
page's links commit with its watermark, the newest `UpdatedDateUTC` applied, and the next page is
read from that watermark (not by page number: a record changed meanwhile moves to the end). The plugin's own
writes come back too: one whose version and owned fields the write ledger holds is our echo and
dropped, so nothing loops.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis

from crm_qbo_plugin.inbound.apply import Outcome, Target, skipped
from crm_qbo_plugin.inbound.enqueue import enqueue_import, request_xero_poll, xero_poll_flag
from crm_qbo_plugin.inbound.importer import import_unfinished
from crm_qbo_plugin.inbound.xero_apply import XeroApplier
from crm_qbo_plugin.runtime.clients import xero_client_for
from crm_qbo_plugin.runtime.locks import LeaderLock
from crm_qbo_plugin.runtime.realm_lock import holding
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import cursors, inbox
from crm_qbo_plugin.store.connections import connected, connection_for
from crm_qbo_plugin.store.db import transaction
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus, InboxStatus
from crm_qbo_plugin.store.types import Provider
from crm_qbo_plugin.xero import NotFoundError, XeroClient, parse_timestamp

log = logging.getLogger(__name__)

STREAMS = {"Contacts": "xero:contacts:modified", "Invoices": "xero:invoices:modified"}
NOTICE_ENTITIES = {"XeroContact": "Contacts", "XeroInvoice": "Invoices"}
# Xero's UpdatedDateUTC has millisecond precision and If-Modified-Since whole seconds: ask from a
# second before the watermark; what was applied already is unchanged and skipped.
OVERLAP = timedelta(seconds=1)
POLL_PAGE_SIZE = 100


@dataclass(frozen=True)
class Read:
    """What a poll's read did with one record, and the version (`UpdatedDateUTC`) it read."""

    outcome: Outcome
    updated: datetime | None

    def covers(self, stamp: str) -> bool:
        """Whether this read saw the change a notice with this event date announces."""
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            return False
        return self.updated is not None and when.tzinfo is not None and self.updated >= when


@dataclass
class PollResult:
    status: str  # polled | busy | not-connected
    applied: int = 0
    skipped: int = 0
    read: dict[tuple[str, str], Read] = field(default_factory=dict)  # what this poll's read did, by record

    def count(self, outcome: Outcome) -> None:
        if outcome.status is InboxStatus.APPLIED:
            self.applied += 1
        else:
            self.skipped += 1


def poll_xero(state: Services, tenant: str) -> PollResult:
    """Read what changed in the tenant's Xero organisation since the watermarks and apply it.
    Returns at once if another worker holds the organisation: as QuickBooks' drain does, the holder
    looks again after releasing it and polls once more while notices wait and no poll is queued."""
    conn = connection_for(state.engine, tenant)
    if conn is None or conn.provider != Provider.XERO.value or conn.status != ConnectionStatus.CONNECTED.value \
            or not conn.realm_id or conn.connected_at is None or conn.id is None:
        return PollResult("not-connected")
    total = PollResult("polled")
    while True:
        result = _poll_locked(state, conn, conn.realm_id, conn.connected_at)
        if result is None:
            return total if total.applied or total.skipped else PollResult("busy")
        total.applied, total.skipped = total.applied + result.applied, total.skipped + result.skipped
        if _poll_queued(state, conn.id) or not inbox.has_pending(state.engine, conn.realm_id):
            return total


class _LostLock(Exception):
    """Another poll holds the organisation now: ours ran out while Xero's limits made us wait."""


def _keep(lock: LeaderLock) -> None:
    """Renew the organisation's lock before applying more, or stop if another poll has it."""
    if not lock.try_acquire_or_renew():
        raise _LostLock


def _poll_locked(state: Services, conn: Connection, org: str, connected_at: datetime) -> PollResult | None:
    """One poll under the organisation's realm lock; None if another worker holds it."""
    with holding(state.redis, org) as lock:
        if lock is None:
            return None
        result = PollResult("polled")
        target = Target.of(conn)
        arrived = inbox.newest_pending_id(state.engine, org)  # before the read: what it covers
        with closing(xero_client_for(state, org)) as xero:
            try:
                for collection, stream in STREAMS.items():
                    since: datetime | None = cursors.load_time(state.engine, conn.tenant_id, stream) or connected_at
                    while since is not None:
                        since = _read_changes(state, target, xero, lock, collection, stream, since, result)
                _apply_notices(state, target, org, xero, lock, result, arrived)
            except _LostLock:
                log.warning("inbound.xero_poll_lock_lost applied=%s skipped=%s", result.applied, result.skipped)
                return result
        log.info("inbound.xero_polled applied=%s skipped=%s", result.applied, result.skipped)
        return result


def _poll_queued(state: Services, connection_id: int) -> bool:
    """A poll job is queued and not started (it will gather what arrived); True if Redis cannot say."""
    try:
        return bool(state.redis.exists(xero_poll_flag(connection_id)))
    except redis.RedisError:
        return True  # the scheduler's next poll applies what waits


def _read_changes(state: Services, target: Target, xero: XeroClient, lock: LeaderLock, collection: str,
                  stream: str, since: datetime, result: PollResult) -> datetime | None:
    """Apply the pages changed since `since`, each committed with its watermark. Returns the
    watermark to read again from (None when done): a full page spanning more than the overlap is
    read again from its newest record rather than by page number, because a record changed
    meanwhile moves to the end of the list and the record that takes its place would be skipped."""
    for page in xero.changed(collection, since - OVERLAP, page_size=POLL_PAGE_SIZE):
        _keep(lock)
        applier = XeroApplier(state, target, xero)
        newest = _apply_page(applier, collection, page, result, since)
        _keep(lock)  # its payments' read may have waited for Xero's limits
        with transaction(state.engine) as db:  # a page at a time: a crash re-reads one page
            applier.flush(db)
            cursors.write(db, target.tenant, stream, newest.isoformat())
        oldest = min((t for r in page if (t := _updated(r)) is not None), default=newest)
        if len(page) >= POLL_PAGE_SIZE and oldest < (newest - OVERLAP).replace(microsecond=0):
            return newest
        since = newest  # a full page within the overlap: read on by page number
    return None


def _apply_page(applier: XeroApplier, collection: str, page: list[dict[str, Any]], result: PollResult,
                newest: datetime) -> datetime:
    """Apply one page; returns the newest UpdatedDateUTC seen (the page's watermark)."""
    entity = "XeroContact" if collection == "Contacts" else "XeroInvoice"
    applier.preload_records(entity, page)
    key = "ContactID" if collection == "Contacts" else "InvoiceID"
    for record in page:
        outcome = applier.apply_contact(record) if collection == "Contacts" else applier.apply_xero_invoice(record)
        result.count(outcome)
        result.read[(entity, str(record.get(key) or "").lower())] = Read(outcome, _updated(record))
        newest = max(newest, _updated(record) or newest)
    return newest


def _apply_notices(state: Services, target: Target, org: str, xero: XeroClient, lock: LeaderLock,
                   result: PollResult, arrived: int) -> None:
    """Settle the organisation's pending webhook notices, in arrival order; those `result.read`
    covers (arrived by `arrived`, or announcing a change no newer than the version read) without
    reading their record again."""
    after = 0
    while batch := inbox.pending_ids(state.engine, org, after=after):
        stamps = inbox.change_stamps(state.engine, batch)
        for notice in inbox.pending_notices(state.engine, batch):
            notice_id, entity, entity_id = int(notice[0]), str(notice[2]), str(notice[3])
            read = result.read.get((entity, entity_id.lower()))
            if read is not None and (notice_id <= arrived or read.covers(stamps.get(notice_id, ""))):
                inbox.settle(state.engine, notice_id, read.outcome.status, read.outcome.reason or None)
                continue  # counted with its page already
            applier = XeroApplier(state, target, xero)
            outcome = _apply_notice(applier, xero, entity, entity_id)
            _keep(lock)  # the read may have waited for Xero's limits
            with transaction(state.engine) as db:
                applier.flush(db)
            inbox.settle(state.engine, notice_id, outcome.status, outcome.reason or None)
            result.count(outcome)
        after = batch[-1]


def _apply_notice(applier: XeroApplier, xero: XeroClient, entity: str, entity_id: str) -> Outcome:
    """A notice names a record only: re-read it and apply what it is now."""
    if entity not in NOTICE_ENTITIES:
        return skipped(f"Xero {entity} changes are not synced to the CRM")
    try:
        if entity == "XeroContact":
            return applier.apply_contact(xero.get_contact(entity_id))
        return applier.apply_xero_invoice(xero.get_invoice(entity_id))
    except NotFoundError:
        return skipped("Xero no longer has this record")


def enqueue_xero_polls(state: Services) -> int:
    """The scheduler's job: one poll per connected Xero organisation, and the imports that stopped
    resumed (as QuickBooks' enqueue_polls does); returns how many polls were queued."""
    polled = 0
    for conn in connected(state.engine, Provider.XERO.value):
        if conn.id is not None and request_xero_poll(state, conn.id):
            polled += 1
        if import_unfinished(state, conn.tenant_id):
            enqueue_import(state, conn.tenant_id)
    return polled


def _updated(record: Mapping[str, Any]) -> datetime | None:
    raw = record.get("UpdatedDateUTC")
    return parse_timestamp(raw) if isinstance(raw, str) and raw else None
