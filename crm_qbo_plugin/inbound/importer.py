"""Import on connect: every QBO customer, and every invoice when "Import invoices" was on.

Pages of 1000 ordered by Id, one query each; records are applied straight from the page (no
re-read) with a few batched queries per page. After each page its links, the checkpoint (Cursor
"import:<Entity>" = last Id done) and the progress on the SyncRun commit in one transaction, so a
worker killed at any moment resumes after the last committed page. Records of the page that was
in flight are written again idempotently: a contact is found by its email (or by the CRM id the
import proposed for it), an invoice by the CRM id the import proposed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import redis
from sqlmodel import col, select

from crm_qbo_plugin.connections.clients import client_for
from crm_qbo_plugin.connections.status import mark_needs_reconnect
from crm_qbo_plugin.inbound import cursors
from crm_qbo_plugin.inbound.apply import Applier, Target
from crm_qbo_plugin.inbound.enqueue import enqueue_import
from crm_qbo_plugin.inbound.realm_lock import holding
from crm_qbo_plugin.inbound.runs import finish_run, save_counts, start_run
from crm_qbo_plugin.jobs.leader import LeaderLock
from crm_qbo_plugin.qbo import QboClient, QboError, ReconnectRequired, gt
from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus, RunStatus, SyncRun

log = logging.getLogger(__name__)

KIND = "import"
PAGE_SIZE = 1000
LOCK_WAIT_SECONDS = 60.0
PHASES = (("Customer", "customers"), ("Invoice", "invoices"))


def stream(entity: str) -> str:
    return f"import:{entity}"


def import_lock(state: PluginState, tenant: str) -> LeaderLock:
    """One import per tenant at a time; a killed worker's lock runs out after its TTL."""
    return LeaderLock(state.redis, key=f"crm-qbo:import:{tenant}", ttl_seconds=300)


def _connection(state: PluginState, tenant: str) -> Connection | None:
    with session(state.engine) as db:
        return db.exec(select(Connection).where(Connection.tenant_id == tenant)).first()


def _open_run(state: PluginState, tenant: str) -> SyncRun | None:
    with session(state.engine) as db:
        return db.exec(
            select(SyncRun).where(SyncRun.tenant_id == tenant, SyncRun.kind == KIND,
                                  SyncRun.status == RunStatus.RUNNING.value)
            .order_by(col(SyncRun.id).desc())
        ).first()


def start_import(state: PluginState, tenant: str) -> SyncRun:
    """Record an import run for the card and queue the job (called at the end of a connect)."""
    run = _open_run(state, tenant) or start_run(state.engine, tenant, KIND)
    try:
        enqueue_import(state, tenant)
    except redis.RedisError as exc:  # the open run is resumed by the scheduler's next round
        log.warning("import not queued (%s); the scheduler starts it", type(exc).__name__)
    return run


def import_unfinished(state: PluginState, tenant: str) -> bool:
    """An import run is open and no worker holds it (its worker died): it should be resumed."""
    return _open_run(state, tenant) is not None and import_lock(state, tenant).holder() is None


def run_import(state: PluginState, tenant: str) -> SyncRun | None:
    """Import, or resume, the tenant's QBO records; None if not connected or already running."""
    connection = _connection(state, tenant)
    if connection is None or connection.status != ConnectionStatus.CONNECTED.value or not connection.realm_id:
        return None
    lock = import_lock(state, tenant)
    if not lock.try_acquire_or_renew():
        return None
    try:
        target = replace(Target.of(connection), fire_automations=False)  # history never fires triggers
        run = _open_run(state, tenant) or start_run(state.engine, tenant, KIND)
        counts = dict(run.counts)
        phases = [p for p in PHASES if p[0] == "Customer" or target.import_invoices]
        errors: list[str] = []
        try:
            with client_for(state, target.realm_id) as qbo:
                for entity, key in phases:
                    _import_entity(state, target, qbo, run, counts, entity, key, lock)
        except ReconnectRequired:
            mark_needs_reconnect(state, target.realm_id, "QuickBooks refused the saved authorisation; reconnect to resume")
            errors.append("QuickBooks needs to be reconnected; the import resumes after reconnecting")
        except (QboError, _Busy) as exc:
            log.warning("import stopped (%s); it resumes from its checkpoint", type(exc).__name__)
            errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            run.counts = counts
            return _stopped(state, run, errors)
        return finish_run(state.engine, run, counts, [])
    finally:
        lock.release()


class _Busy(Exception):
    """The realm lock stayed taken (a long drain): the page is tried again by the next run."""


def _stopped(state: PluginState, run: SyncRun, errors: list[str]) -> SyncRun:
    """Keep the run open (so it is resumed) but show why it paused."""
    with session(state.engine) as db:
        row = db.get(SyncRun, run.id)
        assert row is not None
        row.errors = [e[:500] for e in errors]
        db.add(row)
        db.commit()
        return row


def _import_entity(state: PluginState, target: Target, qbo: QboClient, run: SyncRun, counts: dict[str, Any],
                   entity: str, key: str, lock: LeaderLock) -> None:
    last = cursors.load(state.engine, target.tenant, stream(entity)) or "0"
    where = [gt("Id", last)]
    if f"{key}_total" not in counts:
        counts[f"{key}_total"] = qbo.count(entity, where)
        counts[f"{key}_done"] = 0
        with state.engine.begin() as conn:
            save_counts(conn, run, counts)
    if counts[f"{key}_done"] >= counts[f"{key}_total"]:
        return
    for page in qbo.query_pages(entity, where, order_by="Id", page_size=PAGE_SIZE):
        lock.try_acquire_or_renew()
        _apply_page(state, target, qbo, run, counts, entity, key, page)
        if counts[f"{key}_done"] >= counts[f"{key}_total"]:
            break  # the count said this was all: no query for an empty last page


def _apply_page(state: PluginState, target: Target, qbo: QboClient, run: SyncRun, counts: dict[str, Any],
                entity: str, key: str, page: list[dict[str, Any]]) -> None:
    with holding(state.redis, target.realm_id, wait_seconds=LOCK_WAIT_SECONDS) as realm:
        if realm is None:
            raise _Busy("another worker held this company's changes for too long")
        applier = Applier(state, target, qbo)
        applier.preload(entity, page)
        for body in page:
            if entity == "Customer":
                applier.apply_customer(body, for_invoice=True)
            else:
                applier.apply_invoice(body)
        counts[f"{key}_done"] = counts[f"{key}_done"] + len(page)
        with state.engine.begin() as conn:
            applier.flush(conn)
            cursors.write(conn, target.tenant, stream(entity), str(page[-1]["Id"]))
            save_counts(conn, run, counts)
