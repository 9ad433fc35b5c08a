"""Apply a realm's pending inbox notices in arrival order, under the realm lock.

A batch of notices is read from QBO with one `Id IN (…)` query per entity, decided together, handed
to the host in one bulk write, and its link changes and final statuses commit in one short
transaction — so a burst costs a few queries and commits, not a few per notice. If any notice of
the batch fails, nothing of the batch is written and it is applied again notice by notice (replays
are harmless: links and SyncTokens make them no-ops), each with its own transaction, so the failure
dead-letters that one notice with the reason — the next CDC poll brings the change again — and
never blocks the realm. A throttle, a QBO outage or a connection that needs reconnecting stops the
drain and leaves the rest pending (in order); the next webhook or poll resumes it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crm_qbo_plugin import logs, metrics
from crm_qbo_plugin.host import HostContractError
from crm_qbo_plugin.inbound.apply import Applier, Outcome, Target
from crm_qbo_plugin.inbound.enqueue import drain_flag, mark_drained
from crm_qbo_plugin.qbo import (
    Condition,
    QboClient,
    QboError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
    build_select,
    in_,
)
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.locks import LeaderLock
from crm_qbo_plugin.runtime.realm_lock import holding
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.runtime.status import mark_needs_reconnect
from crm_qbo_plugin.store import inbox
from crm_qbo_plugin.store.connections import connection_of_realm
from crm_qbo_plugin.store.db import transaction
from crm_qbo_plugin.store.tables import ConnectionStatus, InboxStatus

log = logging.getLogger(__name__)

MAX_IN_IDS = 1000  # a query answers at most 1000 rows
# Entities whose notices are read in bulk, with the conditions that make the query return what a
# read by id returns (a query leaves inactive customers out unless asked).
PREFETCHED: dict[str, list[Condition]] = {"Customer": [in_("Active", (True, False))], "Invoice": []}
# Notices per batch: bounds the bulk host write and the commit that holds the write lock.
BATCH_SIZE = 100
RENEW_EVERY_SECONDS = 10.0  # the realm lock lives 120 s; renewing per notice costs a round trip each
MOVED = "the company is now connected to another location"
# A notice that fails with one of these is dead-lettered with the reason; other errors stop the job.
NOTICE_ERRORS = (QboError, ValueError, KeyError, TypeError)
BATCH_ERRORS = (QboError, ValueError, KeyError, TypeError, HostContractError)  # + a host's bulk-write breach


@dataclass
class DrainResult:
    applied: int = 0
    skipped: int = 0
    dead: int = 0
    stopped: str | None = None  # why pending notices were left for later
    errors: list[str] = field(default_factory=list)

    def add(self, other: DrainResult) -> None:
        self.applied += other.applied
        self.skipped += other.skipped
        self.dead += other.dead
        self.stopped = other.stopped or self.stopped
        self.errors.extend(other.errors)


def drain_realm(state: Services, realm_id: str) -> DrainResult:
    """Apply the realm's pending notices; returns at once if another worker holds the realm."""
    total = DrainResult()
    while True:
        with holding(state.redis, realm_id) as lock:
            if lock is None:
                return total  # the holder re-checks for pending notices after releasing
            total.add(drain_locked(state, realm_id, lock))
        mark_drained(state.redis, realm_id)
        if total.stopped:
            return total
        if state.redis.exists(drain_flag(realm_id)):
            return total  # a queued drain job gathers what arrived meanwhile and applies it
        if not inbox.has_pending(state.engine, realm_id):
            return total


def drain_locked(state: Services, realm_id: str, lock: LeaderLock, qbo: QboClient | None = None) -> DrainResult:
    """Drain while the caller holds the realm lock (the poll job does, around its CDC windows)."""
    result = DrainResult()
    connection = connection_of_realm(state.engine, realm_id)
    if connection is None or connection.status != ConnectionStatus.CONNECTED.value:
        result.stopped = "not connected"
        if connection is None:
            _orphan(state, realm_id)
        return result
    target = Target.of(connection)
    logs.annotate(tenant=target.tenant)
    if qbo is not None:
        return _drain(state, target, qbo, lock, result)
    with client_for(state, realm_id) as client:
        return _drain(state, target, client, lock, result)


def _orphan(state: Services, realm_id: str) -> None:
    """Notices of a realm nobody holds any more can never be applied: dead-letter them."""
    orphans = inbox.dead_letter_pending(state.engine, realm_id, inbox.NO_TENANT)
    metrics.count(state.redis, "drains", orphans, outcome=InboxStatus.DEAD.value)
    metrics.count(state.redis, "failures", orphans, kind="dead_letter")


class Renewer:
    """Renews the realm lock when it is due, not on every notice."""

    def __init__(self, lock: LeaderLock) -> None:
        self.lock = lock
        self.renewed = time.monotonic()

    def __call__(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.renewed >= RENEW_EVERY_SECONDS:
            self.lock.try_acquire_or_renew()
            self.renewed = now


def _drain(state: Services, target: Target, qbo: QboClient, lock: LeaderLock, result: DrainResult) -> DrainResult:
    last = 0
    renew = Renewer(lock)
    while True:
        batch = inbox.pending_ids(state.engine, target.realm_id, limit=BATCH_SIZE, after=last)
        if not batch:
            return result
        renew(force=True)
        try:
            bodies = prefetch(state, qbo, batch)
        except ReconnectRequired:
            mark_needs_reconnect(state, target.realm_id)
            result.stopped = "needs reconnect"
            return result
        except (ThrottledError, TransientError) as exc:
            log.info("inbound.drain_paused error=%s", type(exc).__name__)
            result.errors.append(f"{type(exc).__name__}: {exc}")
            result.stopped = type(exc).__name__
            return result
        except QboError as exc:  # the notices are read one by one instead
            log.warning("inbound.bulk_read_refused error=%s next=one_at_a_time", type(exc).__name__)
            bodies = {}
        stop = apply_together(state, target, qbo, batch, bodies, result, renew)
        if stop:
            result.stopped = stop
            return result
        if len(batch) < BATCH_SIZE:
            return result  # all that was pending; a notice recorded since has queued its own drain
        last = batch[-1]


def apply_together(state: Services, target: Target, qbo: QboClient, notice_ids: list[int],
                   bodies: Mapping[int, Mapping[str, Any]], result: DrainResult, renew: Renewer) -> str | None:
    """Apply the notices as one batch or, when one of them fails (nothing of the batch written
    then), one by one; returns a reason to stop draining or None."""
    try:
        return apply_batch(state, target, qbo, notice_ids, bodies, result)
    except _OneByOne:
        for notice_id in notice_ids:
            renew()
            stop = apply_one(state, target, qbo, notice_id, result, bodies.get(notice_id))
            if stop:
                return stop
    return None


class _OneByOne(Exception):
    """A notice of the batch failed: nothing of the batch was written; apply it notice by notice."""


def apply_batch(state: Services, target: Target, qbo: QboClient, notice_ids: list[int],
                bodies: Mapping[int, Mapping[str, Any]], result: DrainResult) -> str | None:
    """Apply the pending notices among `notice_ids` together (see the module docstring); returns a
    reason to stop draining (nothing of the batch written) or None. Raises `_OneByOne` when a
    notice fails, before anything of the batch is written."""
    notices = inbox.pending_notices(state.engine, notice_ids)
    if not notices:
        return None
    applier = Applier(state, target, qbo, defer_host_writes=True)
    by_entity: dict[str, dict[str, Mapping[str, Any]]] = {}
    for notice in notices:
        if (body := bodies.get(notice.id)) is not None:
            by_entity.setdefault(notice.entity, {})[str(body.get("Id"))] = body
    outcomes: list[tuple[int, Outcome]] = []
    try:
        for entity, found in by_entity.items():
            applier.preload(entity, list(found.values()))
        for notice in notices:
            if notice.tenant_id != target.tenant:
                outcomes.append((notice.id, Outcome(InboxStatus.DEAD, MOVED)))
                continue
            body = bodies.get(notice.id)
            if body is not None:
                outcomes.append((notice.id, applier.apply_body(notice.entity, body)))
            else:
                outcomes.append((notice.id, applier.apply_notice(
                    notice.entity, notice.entity_id, notice.operation, notice.data or {})))
        applier.write_host()
    except (ReconnectRequired, ThrottledError, TransientError) as exc:
        return _paused(state, target, result, exc)
    except BATCH_ERRORS as exc:
        log.info("inbound.batch_failed error=%s next=one_at_a_time", type(exc).__name__)
        raise _OneByOne from exc
    with transaction(state.engine) as conn:  # the batch's links and ledger with its notices' statuses
        applier.flush(conn)
        inbox.finish_many(conn, [(notice_id, outcome.status, outcome.reason) for notice_id, outcome in outcomes])
    _count(state, result, *(outcome for _notice_id, outcome in outcomes))
    return None


def _paused(state: Services, target: Target, result: DrainResult, exc: Exception) -> str:
    """Why draining stops here (the notices stay pending): QBO wants a reconnect, or is busy."""
    if isinstance(exc, ReconnectRequired):
        mark_needs_reconnect(state, target.realm_id)
        return "needs reconnect"
    log.info("inbound.drain_paused error=%s", type(exc).__name__)
    result.errors.append(f"{type(exc).__name__}: {exc}")
    return type(exc).__name__


def _count(state: Services, result: DrainResult, *outcomes: Outcome) -> None:
    """Add the outcomes to `result` and to the metrics (one Redis call per status, not per notice)."""
    by_status = Counter(outcome.status for outcome in outcomes)
    for status, amount in by_status.items():
        metrics.count(state.redis, "drains", amount, outcome=status.value)
    metrics.count(state.redis, "failures", by_status[InboxStatus.DEAD], kind="dead_letter")
    result.applied += by_status[InboxStatus.APPLIED]
    result.skipped += by_status[InboxStatus.SKIPPED]
    result.dead += by_status[InboxStatus.DEAD]
    result.errors.extend(outcome.reason or "" for outcome in outcomes if outcome.status is InboxStatus.DEAD)


def prefetch(state: Services, qbo: QboClient, notice_ids: list[int]) -> dict[int, Mapping[str, Any]]:
    """Current bodies for a batch of notices with `SELECT * FROM <Entity> WHERE Id IN (…)`, one
    query per 1000 ids of an entity instead of one read per notice. Bodies are applied in the
    notices' order, as the per-notice re-read would be; a notice whose entity the query does not
    return (deleted, a merge, a payment, another entity) keeps the re-read path and its rules."""
    wanted: dict[str, dict[str, list[int]]] = {}
    for notice_id, _tenant, entity, entity_id, operation, _data in inbox.pending_notices(state.engine, notice_ids):
        if entity in PREFETCHED and operation != "Merge" and str(entity_id).isdigit():
            wanted.setdefault(entity, {}).setdefault(str(entity_id), []).append(int(notice_id))
    bodies: dict[int, Mapping[str, Any]] = {}
    for entity, by_id in wanted.items():
        ids = sorted(by_id, key=int)
        for start in range(0, len(ids), MAX_IN_IDS):
            chunk = ids[start:start + MAX_IN_IDS]
            where = [in_("Id", chunk), *PREFETCHED[entity]]
            for body in qbo.query(build_select(entity, where, max_results=MAX_IN_IDS)):
                for notice_id in by_id.get(str(body.get("Id")), []):
                    bodies[notice_id] = body
    return bodies


def apply_one(state: Services, target: Target, qbo: QboClient, notice_id: int, result: DrainResult,
              body: Mapping[str, Any] | None = None) -> str | None:
    """Apply one notice — from `body` when the caller has the entity's current state (CDC), else
    by re-reading it — and return a reason to stop draining (the notice stays pending) or None."""
    notice = inbox.pending_notice(state.engine, notice_id)
    if notice is None:
        return None
    if notice.tenant_id != target.tenant:
        with transaction(state.engine) as conn:
            inbox.finish(conn, notice_id, InboxStatus.DEAD, MOVED)
        _count(state, result, Outcome(InboxStatus.DEAD, MOVED))
        return None
    applier = Applier(state, target, qbo)
    try:
        if body is not None:
            outcome = applier.apply_body(notice.entity, body)
        else:
            outcome = applier.apply_notice(notice.entity, notice.entity_id, notice.operation, notice.data or {})
    except (ReconnectRequired, ThrottledError, TransientError) as exc:
        return _paused(state, target, result, exc)
    except NOTICE_ERRORS as exc:
        log.warning("inbound.dead_lettered notice_id=%s error=%s", notice_id, type(exc).__name__)
        outcome = Outcome(InboxStatus.DEAD, f"{type(exc).__name__}: {exc}"[:500])
    with transaction(state.engine) as conn:  # the notice's links and ledger with its status
        if outcome.status is not InboxStatus.DEAD:
            applier.flush(conn)
        inbox.finish(conn, notice_id, outcome.status, outcome.reason)
    _count(state, result, outcome)
    return None
