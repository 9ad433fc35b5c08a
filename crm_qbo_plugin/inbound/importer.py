"""Import on connect: every QBO customer, and every invoice when "Import invoices" was on.

Pages of 1000 ordered by Id, one query each; records are applied straight from the page (no
re-read) with a few batched queries per page. After each page its links, the checkpoint (Cursor
"import:<Entity>" = last Id done) and the progress on the SyncRun commit in one transaction, so a
worker killed at any moment resumes after the last committed page. Records of the page that was
in flight are written again idempotently: a contact is found by its email (or by the CRM id the
import proposed for it), an invoice by the CRM id the import proposed.

Each page's host writes go in one bulk call per kind (see `Applier.write_host`), before the
transaction that commits the page's links and checkpoint. QBO is read on background threads,
each with its own client (a client is not shared between threads): the COUNTs and the first pages
of both phases at once (one round trip of latency before the first page applies, not two), then,
while a page is applied, the next one. The COUNT says how many pages there are, so no query is made
for an empty page past the end (only a first page may come back empty, asked for beside its COUNT).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import redis

from crm_qbo_plugin.inbound.apply import Applier, Target
from crm_qbo_plugin.inbound.enqueue import enqueue_import
from crm_qbo_plugin.qbo import Condition, QboClient, QboError, ReconnectRequired, gt
from crm_qbo_plugin.qbo.query import page_statements
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.runtime.locks import LeaderLock
from crm_qbo_plugin.runtime.realm_lock import holding
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.runtime.status import mark_needs_reconnect
from crm_qbo_plugin.store import cursors
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.db import transaction
from crm_qbo_plugin.store.runs import finish_run, open_run, pause_run, save_counts, start_run
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus, SyncRun

log = logging.getLogger(__name__)

KIND = "import"
PAGE_SIZE = 1000
LOCK_WAIT_SECONDS = 60.0
PHASES = (("Customer", "customers"), ("Invoice", "invoices"))
READ_THREADS = 4  # the two COUNTs and the two first pages at once; below QBO's 10 in flight
T = TypeVar("T")


def stream(entity: str) -> str:
    return f"import:{entity}"


def import_lock(state: Services, tenant: str) -> LeaderLock:
    """One import per tenant at a time; a killed worker's lock runs out after its TTL."""
    return LeaderLock(state.redis, key=f"crm-qbo:import:{tenant}", ttl_seconds=300)


def _open_run(state: Services, tenant: str) -> SyncRun | None:
    return open_run(state.engine, tenant, KIND)


def start_import(state: Services, tenant: str) -> SyncRun:
    """Record an import run for the card and queue the job (called at the end of a connect)."""
    run = _open_run(state, tenant) or start_run(state.engine, tenant, KIND)
    try:
        enqueue_import(state, tenant)
    except redis.RedisError as exc:  # the open run is resumed by the scheduler's next round
        log.warning("inbound.import_not_queued error=%s next=scheduler", type(exc).__name__)
    return run


def import_open(state: Services, tenant: str) -> bool:
    """An import run is open (started and not finished, e.g. cut short by a disconnect)."""
    return _open_run(state, tenant) is not None


def import_unfinished(state: Services, tenant: str) -> bool:
    """An import run is open and no worker holds it (its worker died): it should be resumed."""
    return _open_run(state, tenant) is not None and import_lock(state, tenant).holder() is None


def run_import(state: Services, tenant: str) -> SyncRun | None:
    """Import, or resume, the tenant's QBO records; None if not connected or already running."""
    connection = connection_for(state.engine, tenant)
    if connection is None or connection.status != ConnectionStatus.CONNECTED.value or not connection.realm_id:
        return None

    def read(target: Target, run: SyncRun, counts: dict[str, Any], lock: LeaderLock, customers: bool) -> None:
        phases = [p for p in PHASES if (customers if p[0] == "Customer" else target.import_invoices)]
        with client_for(state, target.realm_id) as qbo, _Reader(state, target.realm_id) as reader:
            for phase in _plan(state, target, reader, run, counts, phases):
                _import_entity(state, target, qbo, run, counts, phase, lock)

    return import_under_lock(state, connection, "QuickBooks", ReconnectRequired, QboError, read)


ImportBody = Callable[[Target, SyncRun, dict[str, Any], LeaderLock, bool], None]


def import_under_lock(state: Services, connection: Connection, books: str, reconnect: type[Exception],
                      stopped: type[Exception], read: ImportBody) -> SyncRun | None:
    """The run every books' import shares: the tenant's import lock (None if another worker holds
    it), the open run resumed or a new one, then `read(target, run, counts, lock, customers)`
    (customers: whether contacts are imported). A `reconnect` error marks the connection needs-
    reconnect and a `stopped` one (or Busy) pauses the run; either way it resumes from its
    checkpoints. History never fires triggers."""
    lock = import_lock(state, connection.tenant_id)
    if not lock.try_acquire_or_renew():
        return None
    try:
        target = replace(Target.of(connection), fire_automations=False)
        run = _open_run(state, connection.tenant_id) or start_run(state.engine, connection.tenant_id, KIND)
        counts = dict(run.counts)
        customers = card_settings(connection).import_customers or target.import_invoices
        errors: list[str] = []
        try:
            read(target, run, counts, lock, customers)
        except reconnect:
            mark_needs_reconnect(state, target.realm_id)
            errors.append(f"{books} needs to be reconnected; the import resumes after reconnecting")
        except (stopped, Busy) as exc:
            log.warning("inbound.import_stopped provider=%s error=%s next=resume_from_checkpoint",
                        connection.provider, type(exc).__name__)
            errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            run.counts = counts
            return pause_run(state.engine, run, errors)
        return finish_run(state.engine, run, counts, [])
    finally:
        lock.release()


class Busy(Exception):
    """The realm lock stayed taken (a long drain or poll): the page is tried again by the next run."""


class _Reader:
    """QBO reads for the import on background threads, each thread with its own client; the
    per-realm limiter keeps them, with every other worker's calls, within QBO's limits. An error
    met by a read is raised where its result is taken, as a read made in place would be."""

    def __init__(self, state: Services, realm_id: str) -> None:
        self._state, self._realm_id = state, realm_id
        self._local = threading.local()
        self._clients: list[QboClient] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="crm-qbo-import-read")

    def _client(self) -> QboClient:
        client: QboClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = client_for(self._state, self._realm_id)
            with self._lock:
                self._clients.append(client)
        return client

    def submit(self, read: Callable[[QboClient], T]) -> Future[T]:
        return self._pool.submit(lambda: read(self._client()))

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in self._clients:
            client.close()


class _Pages:
    """The pages of a phase (ordered by Id, after its checkpoint): the first asked for at once,
    each later one as soon as the one before it is taken (one page ahead of the page being applied),
    up to the count `limit` gives. Stops at a short page."""

    def __init__(self, reader: _Reader, entity: str, where: list[Condition]) -> None:
        self._reader = reader
        self._statements = page_statements(entity, where, order_by="Id", page_size=PAGE_SIZE)
        self._left = 1
        self._next: Future[list[dict[str, Any]]] | None = None
        self._ask()

    def limit(self, count: int) -> None:
        """The phase has `count` pages in all (the first one is asked for already)."""
        self._left = max(0, count - 1)

    def _ask(self) -> None:
        self._next = None
        if self._left > 0:
            self._left -= 1
            statement = next(self._statements)
            self._next = self._reader.submit(lambda qbo: qbo.query(statement))

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while self._next is not None:
            page = self._next.result()
            full = len(page) >= PAGE_SIZE
            if full:
                self._ask()
            if page:
                yield page
            if not full:
                return


def _counter(entity: str, where: list[Condition]) -> Callable[[QboClient], int]:
    return lambda qbo: qbo.count(entity, where)


@dataclass
class _Phase:
    entity: str
    key: str
    pages: _Pages | None  # None: nothing left to import


def _plan(state: Services, target: Target, reader: _Reader, run: SyncRun, counts: dict[str, Any],
          phases: list[tuple[str, str]]) -> list[_Phase]:
    """Each phase's checkpoint and size (COUNTs taken once per run, saved on the run), and its
    first page asked for at once, beside the COUNTs: the invoices' first page arrives while
    customers apply. A phase a saved count shows done asks for nothing."""
    wheres = {entity: [gt("Id", cursors.load(state.engine, target.tenant, stream(entity)) or "0")] for entity, _k in phases}
    counting = {key: reader.submit(_counter(entity, wheres[entity])) for entity, key in phases
                if f"{key}_total" not in counts}
    first = {key: _Pages(reader, entity, wheres[entity]) for entity, key in phases
             if key in counting or counts[f"{key}_total"] > counts[f"{key}_done"]}
    for key, future in counting.items():
        counts[f"{key}_total"] = future.result()
        counts[f"{key}_done"] = 0
    if counting:
        with transaction(state.engine) as conn:
            save_counts(conn, run, counts)
    plan: list[_Phase] = []
    for entity, key in phases:
        left = counts[f"{key}_total"] - counts[f"{key}_done"]
        pages = first.get(key) if left > 0 else None
        if pages is not None:
            pages.limit(math.ceil(left / PAGE_SIZE))
        plan.append(_Phase(entity, key, pages))
    return plan


def _import_entity(state: Services, target: Target, qbo: QboClient, run: SyncRun, counts: dict[str, Any],
                   phase: _Phase, lock: LeaderLock) -> None:
    if phase.pages is None:
        return
    for page in phase.pages:
        lock.try_acquire_or_renew()
        _apply_page(state, target, qbo, run, counts, phase.entity, phase.key, page)
        if counts[f"{phase.key}_done"] >= counts[f"{phase.key}_total"]:
            break  # the count said this was all: no query for an empty last page


def _apply_page(state: Services, target: Target, qbo: QboClient, run: SyncRun, counts: dict[str, Any],
                entity: str, key: str, page: list[dict[str, Any]]) -> None:
    with holding(state.redis, target.realm_id, wait_seconds=LOCK_WAIT_SECONDS) as realm:
        if realm is None:
            raise Busy("another worker held this company's changes for too long")
        applier = Applier(state, target, qbo, defer_host_writes=True)
        applier.preload(entity, page)
        for body in page:
            if entity == "Customer":
                applier.apply_customer(body, for_invoice=True)
            else:
                applier.apply_invoice(body)
        applier.write_host()  # the CRM holds the page before its links and checkpoint commit
        counts[f"{key}_done"] = counts[f"{key}_done"] + len(page)
        with transaction(state.engine) as conn:  # the page's links and ledger with its checkpoint
            applier.flush(conn)
            cursors.write(conn, target.tenant, stream(entity), str(page[-1]["Id"]))
            save_counts(conn, run, counts)
