"""Import on connect from Xero: every contact, and every sales (ACCREC) invoice when "Import
invoices" is on — QuickBooks' import (inbound/importer.py) for a Xero organisation: the same run on
the card with the same progress figures, the same lock, the same rules through the XeroApplier.

Pages of 1000 ordered by id (a record changed meanwhile keeps its place; one added meanwhile moves
the rest by one, so a record may be read twice, never skipped; contacts and invoices are never
removed from Xero's lists, only archived, voided or deleted). The first page's `pagination` gives
the total. After each page its links, the checkpoint (Cursor "import:XeroContact" = the last page
done) and the progress commit in one transaction, so a worker killed at any moment resumes after
the last committed page; the page in flight is written again idempotently (a contact found by its
e-mail or by the CRM id the import proposed for it, an invoice by its proposed id). Whatever changes
in Xero after the connect is also read by the modified-since poll, which starts at the connect.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from crm_qbo_plugin.inbound.apply import Target
from crm_qbo_plugin.inbound.importer import LOCK_WAIT_SECONDS, Busy, import_under_lock
from crm_qbo_plugin.inbound.xero_apply import CONTACT_ENTITY, INVOICE_ENTITY, XeroApplier
from crm_qbo_plugin.runtime.clients import xero_client_for
from crm_qbo_plugin.runtime.locks import LeaderLock
from crm_qbo_plugin.runtime.realm_lock import holding
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import cursors
from crm_qbo_plugin.store.connections import connection_for
from crm_qbo_plugin.store.db import transaction
from crm_qbo_plugin.store.runs import save_counts
from crm_qbo_plugin.store.tables import ConnectionStatus, SyncRun
from crm_qbo_plugin.store.types import Provider
from crm_qbo_plugin.xero import ReconnectRequired, UnexpectedResponseError, XeroClient, XeroError

PAGE_SIZE = 1000


class _Phase:
    def __init__(self, entity: str, collection: str, key: str, order: str, params: dict[str, str]) -> None:
        self.entity, self.collection, self.key, self.order, self.params = entity, collection, key, order, params

    @property
    def stream(self) -> str:
        return f"import:{self.entity}"


CONTACTS = _Phase(CONTACT_ENTITY, "Contacts", "customers", "ContactID ASC", {"includeArchived": "true"})
INVOICES = _Phase(INVOICE_ENTITY, "Invoices", "invoices", "InvoiceID ASC", {"where": 'Type=="ACCREC"'})


def run_xero_import(state: Services, tenant: str) -> SyncRun | None:
    """Import, or resume, the tenant's Xero records; None if not connected or already running."""
    connection = connection_for(state.engine, tenant)
    if connection is None or connection.provider != Provider.XERO.value \
            or connection.status != ConnectionStatus.CONNECTED.value or not connection.realm_id:
        return None

    def read(target: Target, run: SyncRun, counts: dict[str, Any], lock: LeaderLock, customers: bool) -> None:
        phases = [p for p in (CONTACTS, INVOICES) if (customers if p is CONTACTS else target.import_invoices)]
        with closing(xero_client_for(state, target.realm_id)) as xero:
            for phase in phases:
                _import_phase(state, target, xero, run, counts, phase)
                lock.try_acquire_or_renew()

    return import_under_lock(state, connection, "Xero", ReconnectRequired, XeroError, read)


def _read_page(xero: XeroClient, phase: _Phase, page: int) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the phase's records, and Xero's count of them all (None if Xero gave none)."""
    params = {**phase.params, "order": phase.order, "page": str(page), "pageSize": str(PAGE_SIZE)}
    payload = xero.request("GET", f"/{phase.collection}", params=params)
    rows = payload.get(phase.collection) if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UnexpectedResponseError(f"Xero's answer has no {phase.collection} list")
    pagination = payload.get("pagination")
    count = pagination.get("itemCount") if isinstance(pagination, dict) else None
    return rows, count if isinstance(count, int) else None


def _import_phase(state: Services, target: Target, xero: XeroClient, run: SyncRun, counts: dict[str, Any],
                  phase: _Phase) -> None:
    done_pages = int(cursors.load(state.engine, target.tenant, phase.stream) or "0")
    total, done = f"{phase.key}_total", f"{phase.key}_done"
    while True:
        rows, count = _read_page(xero, phase, done_pages + 1)
        if total not in counts:  # the first page of the run: its total shows from now on
            counts[total], counts[done] = count if count is not None else len(rows), 0
            with transaction(state.engine) as conn:
                save_counts(conn, run, counts)
        if rows:
            _apply_page(state, target, xero, run, counts, phase, rows, done_pages + 1)
            done_pages += 1
        if len(rows) < PAGE_SIZE:
            return


def _apply_page(state: Services, target: Target, xero: XeroClient, run: SyncRun, counts: dict[str, Any],
                phase: _Phase, rows: list[dict[str, Any]], page: int) -> None:
    with holding(state.redis, target.realm_id, wait_seconds=LOCK_WAIT_SECONDS) as realm:
        if realm is None:
            raise Busy("another worker held this organisation's changes for too long")
        applier = XeroApplier(state, target, xero, defer_host_writes=True)
        applier.preload_records(phase.entity, rows)
        for record in rows:
            if phase is CONTACTS:
                applier.apply_contact(record, importing=True)
            else:
                applier.apply_xero_invoice(record)
        applier.write_host()  # the CRM holds the page before its links and checkpoint commit
        key_done, key_total = f"{phase.key}_done", f"{phase.key}_total"
        counts[key_done] = counts[key_done] + len(rows)
        counts[key_total] = max(counts[key_total], counts[key_done])  # records added meanwhile
        with transaction(state.engine) as conn:  # the page's links and ledger with its checkpoint
            applier.flush(conn)
            cursors.write(conn, target.tenant, phase.stream, str(page))
            save_counts(conn, run, counts)
