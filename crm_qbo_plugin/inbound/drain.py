"""Apply a realm's pending inbox notices, one at a time, in arrival order, under the realm lock.

Each notice's link changes and its final status commit in one transaction. A throttle, a QBO outage
or a connection that needs reconnecting stops the drain and leaves the rest pending (in order); the
next webhook or poll resumes it. Any other failure dead-letters that one notice with the reason —
the next CDC poll brings the change again — so one bad record never blocks the realm.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from crm_qbo_plugin.connections.clients import client_for
from crm_qbo_plugin.connections.status import mark_needs_reconnect
from crm_qbo_plugin.inbound import inbox
from crm_qbo_plugin.inbound.apply import Applier, Outcome, Target
from crm_qbo_plugin.inbound.realm_lock import holding
from crm_qbo_plugin.jobs.leader import LeaderLock
from crm_qbo_plugin.qbo import (
    QboClient,
    QboError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
)
from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus, InboxNotice, InboxStatus

log = logging.getLogger(__name__)


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


def _connection(state: PluginState, realm_id: str) -> Connection | None:
    with session(state.engine) as db:
        return db.exec(select(Connection).where(Connection.realm_id == realm_id)).first()


def drain_realm(state: PluginState, realm_id: str) -> DrainResult:
    """Apply the realm's pending notices; returns at once if another worker holds the realm."""
    total = DrainResult()
    while True:
        with holding(state.redis, realm_id) as lock:
            if lock is None:
                return total  # the holder re-checks for pending notices after releasing
            total.add(drain_locked(state, realm_id, lock))
        if total.stopped:
            return total
        with state.engine.connect() as conn:
            if not inbox.has_pending(conn, realm_id):
                return total


def drain_locked(state: PluginState, realm_id: str, lock: LeaderLock, qbo: QboClient | None = None) -> DrainResult:
    """Drain while the caller holds the realm lock (the poll job does, around its CDC windows)."""
    result = DrainResult()
    connection = _connection(state, realm_id)
    if connection is None or connection.status != ConnectionStatus.CONNECTED.value:
        result.stopped = "not connected"
        if connection is None:
            _orphan(state, realm_id)
        return result
    target = Target.of(connection)
    if qbo is not None:
        return _drain(state, target, qbo, lock, result)
    with client_for(state, realm_id) as client:
        return _drain(state, target, client, lock, result)


def _orphan(state: PluginState, realm_id: str) -> None:
    """Notices of a realm nobody holds any more can never be applied: dead-letter them."""
    with state.engine.begin() as conn:
        for notice_id in inbox.pending_ids(conn, realm_id, limit=10_000):
            inbox.finish(conn, notice_id, InboxStatus.DEAD, inbox.NO_TENANT)


def _drain(state: PluginState, target: Target, qbo: QboClient, lock: LeaderLock, result: DrainResult) -> DrainResult:
    last = 0
    while True:
        with state.engine.connect() as conn:
            batch = inbox.pending_ids(conn, target.realm_id, after=last)
        if not batch:
            return result
        for notice_id in batch:
            last = notice_id
            lock.try_acquire_or_renew()
            stop = apply_one(state, target, qbo, notice_id, result)
            if stop:
                result.stopped = stop
                return result


def apply_one(state: PluginState, target: Target, qbo: QboClient, notice_id: int, result: DrainResult,
              body: Mapping[str, Any] | None = None) -> str | None:
    """Apply one notice — from `body` when the caller has the entity's current state (CDC), else
    by re-reading it — and return a reason to stop draining (the notice stays pending) or None."""
    with session(state.engine) as db:
        notice = db.get(InboxNotice, notice_id)
    if notice is None or notice.status != InboxStatus.PENDING.value:
        return None
    if notice.tenant_id != target.tenant:
        with state.engine.begin() as conn:
            inbox.finish(conn, notice_id, InboxStatus.DEAD, "the company is now connected to another location")
        result.dead += 1
        return None
    applier = Applier(state, target, qbo)
    try:
        if body is not None:
            outcome = applier.apply_body(notice.entity, body)
        else:
            outcome = applier.apply_notice(notice.entity, notice.entity_id, notice.operation, notice.data or {})
    except ReconnectRequired:
        mark_needs_reconnect(state, target.realm_id, "QuickBooks refused the saved authorisation; reconnect to resume")
        return "needs reconnect"
    except (ThrottledError, TransientError) as exc:
        log.info("inbound drain paused for realm (%s)", type(exc).__name__)
        result.errors.append(f"{type(exc).__name__}: {exc}")
        return type(exc).__name__
    except (QboError, ValueError, KeyError, TypeError) as exc:
        log.warning("inbound notice %s dead-lettered (%s)", notice_id, type(exc).__name__)
        outcome = Outcome(InboxStatus.DEAD, f"{type(exc).__name__}: {exc}"[:500])
    with state.engine.begin() as conn:
        if outcome.status is not InboxStatus.DEAD:
            applier.flush(conn)
        inbox.finish(conn, notice_id, outcome.status, outcome.reason)
    if outcome.status is InboxStatus.APPLIED:
        result.applied += 1
    elif outcome.status is InboxStatus.SKIPPED:
        result.skipped += 1
    else:
        result.dead += 1
        result.errors.append(outcome.reason or "")
    return None
