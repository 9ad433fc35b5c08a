"""W1: import on connect — every QBO customer and invoice into the CRM, through a `crm-qbo worker`.

Timed from the import job being queued (what a connect does: ``start_import``) to its SyncRun
finishing. The reference CRM publishes each imported record back to the plugin as an origin-QBO
event, which the plugin records in its outbox and later skips; draining those is reported apart
("echo drain") because it is work the import causes but not the import itself.
"""

from __future__ import annotations

import time
from typing import Any

from bench.infra import Stack, connect, new_location
from bench.measure import api_counts, plugin_usage, rows, scalar, wait_until

IMPORT_TIMEOUT = 3600.0


def import_done(st: Stack, tenant: str) -> bool:
    status = scalar(st, "SELECT status FROM qbo_sync_run WHERE tenant_id = :t AND kind = 'import' "
                        "ORDER BY id DESC LIMIT 1", t=tenant)
    return status is not None and status != "running"


def outbox_settled(st: Stack, tenant: str) -> bool:
    left = scalar(st, "SELECT COUNT(*) FROM qbo_outbox WHERE tenant_id = :t AND status IN ('pending', 'processing')",
                  t=tenant)
    return int(left) == 0


def check_import(st: Stack, tenant: str, customers: int, invoices: int) -> dict[str, Any]:
    """Every QBO record exactly once in the CRM, each with one link to a distinct QBO id."""
    from crm_qbo_plugin.inbound.apply import CONTACT, INVOICE

    crm_contacts = int(scalar(st, "SELECT COUNT(*) FROM crm_contact WHERE location_id = :t", t=tenant))
    crm_invoices = int(scalar(st, "SELECT COUNT(*) FROM crm_invoice WHERE location_id = :t", t=tenant))
    links = {kind: (int(n), int(d)) for kind, n, d in rows(
        st, "SELECT kind, COUNT(*), COUNT(DISTINCT qbo_id) FROM qbo_link WHERE tenant_id = :t GROUP BY kind", t=tenant)}
    contact_links = links.get(CONTACT, (0, 0))
    invoice_links = links.get(INVOICE, (0, 0))
    run = rows(st, "SELECT status, errors FROM qbo_sync_run WHERE tenant_id = :t AND kind = 'import' "
                   "ORDER BY id DESC LIMIT 1", t=tenant)
    ok = (crm_contacts == customers and crm_invoices == invoices and contact_links == (customers, customers)
          and invoice_links == (invoices, invoices) and bool(run) and run[0][0] == "succeeded")
    return {"ok": ok, "crm_contacts": crm_contacts, "crm_invoices": crm_invoices,
            "contact_links": contact_links[0], "invoice_links": invoice_links[0],
            "run_status": run[0][0] if run else None, "run_errors": run[0][1] if run else None}


def run(st: Stack, realm: str, customers: int, invoices: int, echo_drain: bool = True,
        tenant_name: str = "W1 import") -> dict[str, Any]:
    from crm_qbo_plugin.inbound.importer import start_import
    from crm_qbo_plugin.state import get_state

    assert st.sandbox is not None
    tenant = new_location(st, tenant_name)
    connect(st, tenant, realm, import_invoices=True)
    state = get_state(st.app())
    workers = st.start_workers(1, "w1-worker")
    st.sandbox.stats(reset=True)
    started = time.perf_counter()
    start_import(state, tenant)
    wall = wait_until(lambda: import_done(st, tenant), "the import", IMPORT_TIMEOUT, workers, interval=0.02)
    usage = plugin_usage(workers)
    counts = api_counts(st.sandbox.stats(reset=True), [realm])
    result: dict[str, Any] = {
        "tenant": tenant, "records": customers + invoices, "wall_s": round(wall, 3), **usage, **counts,
        "correct": check_import(st, tenant, customers, invoices),
    }
    if echo_drain:
        for proc in workers:
            proc.mark()
        echo_started = time.perf_counter()
        wait_until(lambda: outbox_settled(st, tenant), "the echo events", IMPORT_TIMEOUT, workers, interval=0.2)
        result["echo_drain"] = {
            "events": int(scalar(st, "SELECT COUNT(*) FROM qbo_outbox WHERE tenant_id = :t", t=tenant)),
            "wall_s": round(time.perf_counter() - echo_started, 3),
            **plugin_usage(workers),
            "api_calls": api_counts(st.sandbox.stats(reset=True), [realm])["calls"],
        }
    result["total_wall_s"] = round(time.perf_counter() - started, 3)
    for proc in workers:
        st.stop(proc)
    return result
