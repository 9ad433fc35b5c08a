"""CDC polling: the safety net that brings in every QBO change a webhook missed.

Per connection, on a watermark kept in the database (Cursor stream "cdc"):
- each poll asks for changes since the watermark minus a 2-minute overlap (re-seeing a change is
  harmless: CDC notices go through the inbox, keyed by SyncToken, so nothing is applied twice);
- QBO caps a CDC answer at 1000 objects, oldest first. A capped answer is complete only up to just
  before its newest object, so the window is halved until it ends before that object; that part is
  applied, the watermark moves to its end, and the rest is asked for again;
- the watermark advances only after a window's notices are all applied and committed;
- a watermark older than QBO's 30-day CDC limit (a tenant paused for weeks) falls back to a full
  paged reconcile of customers and invoices; only a complete listing may conclude that a linked
  invoice was deleted.
Each poll holds the realm lock (webhook notices and CDC apply one at a time, in order), then drains
the realm's pending notices, and records a SyncRun with its counts and errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crm_qbo_plugin import logs, metrics
from crm_qbo_plugin.inbound.apply import Applier, Target
from crm_qbo_plugin.inbound.drain import (
    BATCH_SIZE,
    DrainResult,
    Renewer,
    apply_together,
    drain_locked,
)
from crm_qbo_plugin.inbound.enqueue import enqueue_import, enqueue_poll
from crm_qbo_plugin.qbo import QboClient, QboError, ReconnectRequired, in_, parse_timestamp
from crm_qbo_plugin.qbo.notices import Notice
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.locks import LeaderLock
from crm_qbo_plugin.runtime.realm_lock import holding
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.runtime.status import mark_needs_reconnect
from crm_qbo_plugin.store import cursors, inbox
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.connections import connected, connection_for
from crm_qbo_plugin.store.db import transaction
from crm_qbo_plugin.store.runs import finish_run, start_run
from crm_qbo_plugin.store.tables import ConnectionStatus, InboxStatus, LinkKind, LinkStatus, SyncRun
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

CDC_ENTITIES = ("Customer", "Invoice")  # a payment shows up as a change of the invoices it pays
CDC_CAP = 1000
OVERLAP = timedelta(minutes=2)
CDC_LOOKBACK = timedelta(days=29)  # QBO's limit is 30 days; keep a day for clock differences
MIN_WINDOW = timedelta(seconds=1)
CURSOR = "cdc"
LOCK_WAIT_SECONDS = 30.0


class SaturatedWindow(Exception):
    """More than 1000 changes share one second: CDC cannot page them, a reconcile must."""


@dataclass(frozen=True)
class Change:
    entity: str
    body: Mapping[str, Any]
    when: datetime

    @property
    def deleted(self) -> bool:
        return self.body.get("status") == "Deleted"

    def notice(self, realm_id: str) -> Notice:
        qbo_id = str(self.body.get("Id") or "")
        if self.deleted:
            return Notice(realm_id, self.entity, qbo_id, "Delete", "cdc:deleted")
        return Notice(realm_id, self.entity, qbo_id, "Update", f"cdc:{self.body.get('SyncToken')}")


def _changes(answer: Mapping[str, list[dict[str, Any]]]) -> list[Change]:
    found = []
    for entity in CDC_ENTITIES:
        for body in answer.get(entity, []):
            meta = body.get("MetaData") or {}
            stamp = meta.get("LastUpdatedTime") if isinstance(meta, Mapping) else None
            if not body.get("Id") or not isinstance(stamp, str):
                continue
            found.append(Change(entity, body, parse_timestamp(stamp)))
    found.sort(key=lambda c: c.when)
    return found


class Poller:
    """One poll of one connection, while holding its realm lock."""

    def __init__(self, state: Services, target: Target, qbo: QboClient, lock: LeaderLock) -> None:
        self.state = state
        self.target = target
        self.qbo = qbo
        self.lock = lock
        self.counts: dict[str, Any] = {"windows": 0, "splits": 0, "changes": 0, "applied": 0, "skipped": 0,
                                       "dead": 0, "reconciled": False}

    def run(self, watermark: datetime, now: datetime) -> None:
        if now - watermark > CDC_LOOKBACK:
            self.reconcile(now)
            return
        try:
            self.windows(watermark - OVERLAP, now)
        except SaturatedWindow:
            log.warning("inbound.cdc_window_saturated next=full_reconcile")
            self.reconcile(now)

    def windows(self, start: datetime, now: datetime) -> None:
        while True:
            self.counts["windows"] += 1
            found = _changes(self.qbo.cdc(CDC_ENTITIES, start))
            if len(found) < CDC_CAP:
                self.apply(found)
                cursors.save(self.state.engine, self.target.tenant, CURSOR, now)
                return
            # Complete only up to just before the newest object's second: halve the window
            # until it ends there. The next request starts at the cut, at least a second later
            # (changedSince has whole seconds), so every round makes progress.
            newest = found[-1].when.replace(microsecond=0)
            cut = max(now, newest)
            while cut >= newest:
                cut = start + (cut - start) / 2
                if cut - start < MIN_WINDOW:
                    raise SaturatedWindow("more than 1000 changes within one second")
            self.counts["splits"] += 1
            self.apply([c for c in found if c.when <= cut])
            cursors.save(self.state.engine, self.target.tenant, CURSOR, cut)
            start = cut

    def apply(self, found: list[Change]) -> None:
        """Record the changes as inbox notices (source "cdc") and apply the new ones from the
        bodies CDC returned (they are current; no re-read). Raises to stop on throttling/outage."""
        if not found:
            return
        self.counts["changes"] += len(found)
        notices = [c.notice(self.target.realm_id) for c in found]
        recorded = inbox.record_polled(self.state.engine, notices, "cdc", self.target.realm_id, self.target.tenant)
        # seen before (an overlapping window): already applied, or pending for the drain
        fresh = {recorded.new[n.key]: c.body for c, n in zip(found, notices, strict=True) if n.key in recorded.new}
        ids = list(fresh)
        renew = Renewer(self.lock)
        for start in range(0, len(ids), BATCH_SIZE):  # together, like a webhook drain: one host write, one commit
            renew(force=True)
            result = DrainResult()
            stop = apply_together(self.state, self.target, self.qbo, ids[start:start + BATCH_SIZE], fresh, result, renew)
            self._count(result)
            if stop:
                raise _Stopped(stop, result.errors)

    def _count(self, result: DrainResult) -> None:
        self.counts["applied"] += result.applied
        self.counts["skipped"] += result.skipped
        self.counts["dead"] += result.dead

    def reconcile(self, now: datetime) -> None:
        """A full paged listing of customers and invoices (CDC cannot look back this far)."""
        self.counts["reconciled"] = True
        seen_invoices: set[str] = set()
        for entity in CDC_ENTITIES:
            where = [in_("Active", [True, False])] if entity == "Customer" else None
            for page in self.qbo.query_pages(entity, where, order_by="Id"):
                self.lock.try_acquire_or_renew()
                applier = Applier(self.state, self.target, self.qbo)
                applier.preload(entity, page)
                for body in page:
                    outcome = applier.apply_body(entity, body)
                    self.counts["applied" if outcome.status is InboxStatus.APPLIED else "skipped"] += 1
                    if entity == "Invoice":
                        seen_invoices.add(str(body.get("Id")))
                with transaction(self.state.engine) as conn:
                    applier.flush(conn)
        # The listing completed (an error would have raised): linked invoices missing from it
        # were deleted in QBO while CDC could not see it.
        applier = Applier(self.state, self.target, self.qbo)
        for qbo_id, link in applier.book.all_qbo_ids(LinkKind.INVOICE).items():
            if qbo_id not in seen_invoices and link.status != LinkStatus.DELETED:
                applier.invoice_deleted(qbo_id)
                self.counts["deleted"] = self.counts.get("deleted", 0) + 1
        with transaction(self.state.engine) as conn:
            applier.flush(conn)
        cursors.save(self.state.engine, self.target.tenant, CURSOR, now)


class _Stopped(Exception):
    def __init__(self, reason: str, errors: list[str]) -> None:
        super().__init__(reason)
        self.errors = errors


def poll(state: Services, tenant: str, now: datetime | None = None) -> SyncRun | None:
    """Poll one tenant's connection; None when it is not connected."""
    connection = connection_for(state.engine, tenant)
    if connection is None or connection.status != ConnectionStatus.CONNECTED.value or not connection.realm_id:
        return None
    target = Target.of(connection)
    logs.annotate(tenant=tenant, realm=target.realm_id)
    run = start_run(state.engine, tenant, "poll")
    errors: list[str] = []
    poller: Poller | None = None
    with holding(state.redis, target.realm_id, wait_seconds=LOCK_WAIT_SECONDS) as lock:
        if lock is None:
            metrics.count(state.redis, "polls", outcome="busy")
            return finish_run(state.engine, run, {"busy": True}, ["another worker is applying this company's changes"])
        with client_for(state, target.realm_id) as qbo:
            poller = Poller(state, target, qbo, lock)
            started = now or utcnow()
            watermark = cursors.load_time(state.engine, tenant, CURSOR) or connection.connected_at or started
            try:
                poller.run(watermark, started)
                drained = drain_locked(state, target.realm_id, lock, qbo)
                poller._count(drained)
                errors.extend(drained.errors)
            except _Stopped as exc:
                errors.extend(exc.errors or [str(exc)])
            except ReconnectRequired:
                mark_needs_reconnect(state, target.realm_id)
                errors.append("QuickBooks needs to be reconnected")
            except (QboError, SaturatedWindow) as exc:
                log.warning("inbound.cdc_poll_failed error=%s", type(exc).__name__)
                errors.append(f"{type(exc).__name__}: {exc}")
    finished = finish_run(state.engine, run, poller.counts, errors)
    metrics.count(state.redis, "polls", outcome=finished.status)
    return finished


def enqueue_polls(state: Services) -> int:
    """The scheduler's job: one poll per connected tenant with auto-sync on (the card's toggle;
    off means webhooks and "Sync now" only), and resume imports that stopped. Returns the polls."""
    connections = connected(state.engine)
    from crm_qbo_plugin.inbound.importer import import_unfinished

    polled = 0
    for conn in connections:
        if card_settings(conn).auto_sync and enqueue_poll(state, conn.tenant_id):
            polled += 1
        if import_unfinished(state, conn.tenant_id):
            enqueue_import(state, conn.tenant_id)
    return polled
