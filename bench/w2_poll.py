"""W2: one incremental CDC poll that finds K changes (half customers, half invoices) among the
records W1 imported. The changes are made "in QuickBooks" by the harness (sparse updates: a new
phone, a new due date); the poll job runs in a `crm-qbo worker`, after a first poll that finds
nothing (the worker's one-off costs; its CPU is in `first_poll`). Correct when every change is in
the CRM and recorded exactly once in the inbox."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from bench.infra import Stack
from bench.measure import api_counts, plugin_usage, rows, scalar, wait_until
from bench.sandbox_rest import Rest

POLL_TIMEOUT = 900.0
NEW_DUE = date(2031, 1, 15)


def changed_phone(index: int) -> str:
    return f"+1 555 9{index:06d}"


def make_changes(rest: Rest, customers: list[str], invoices: list[str], tag: str) -> None:
    """Sparse updates of the given customers (phone) and invoices (due date), 30 per batch."""
    current: dict[str, dict[str, Any]] = {}
    for entity, ids in (("Customer", customers), ("Invoice", invoices)):
        for start in range(0, len(ids), 500):
            chunk = ", ".join(f"'{i}'" for i in ids[start:start + 500])
            for body in rest.query(f"SELECT * FROM {entity} WHERE Id IN ({chunk}) MAXRESULTS 1000").get(entity, []):
                current[f"{entity}:{body['Id']}"] = body
    items: list[dict[str, Any]] = []
    for n, qbo_id in enumerate(customers):
        token = current[f"Customer:{qbo_id}"]["SyncToken"]
        items.append({"operation": "update", "Customer": {
            "Id": qbo_id, "SyncToken": token, "sparse": True,
            "PrimaryPhone": {"FreeFormNumber": changed_phone(int(qbo_id))}, "Notes": f"changed by {tag} {n}"}})
    for qbo_id in invoices:
        token = current[f"Invoice:{qbo_id}"]["SyncToken"]
        items.append({"operation": "update", "Invoice": {
            "Id": qbo_id, "SyncToken": token, "sparse": True, "DueDate": NEW_DUE.isoformat()}})
    rest.batch(items)


def pick_ids(st: Stack, tenant: str, kind: str, count: int, offset: int) -> list[str]:
    found = rows(st, "SELECT qbo_id FROM qbo_link WHERE tenant_id = :t AND kind = :k ORDER BY id LIMIT :n OFFSET :o",
                 t=tenant, k=kind, n=count, o=offset)
    return [str(r[0]) for r in found]


def check_changes(st: Stack, tenant: str, customers: list[str], invoices: list[str], source: str) -> dict[str, Any]:
    phones = {changed_phone(int(i)) for i in customers}
    contacts_changed = 0
    for start in range(0, len(customers), 500):
        chunk = [changed_phone(int(i)) for i in customers[start:start + 500]]
        marks = ", ".join(f"'{p}'" for p in chunk)
        contacts_changed += int(scalar(st, f"SELECT COUNT(*) FROM crm_contact WHERE location_id = :t AND phone IN ({marks})",  # noqa: S608
                                       t=tenant))
    invoices_changed = int(scalar(st, "SELECT COUNT(*) FROM crm_invoice WHERE location_id = :t AND due_date = :d",
                                  t=tenant, d=NEW_DUE))
    inbox = {status: (int(n), int(d)) for status, n, d in rows(
        st, "SELECT status, COUNT(*), SUM(deliveries) FROM qbo_inbox WHERE tenant_id = :t AND source = :s GROUP BY status",
        t=tenant, s=source)}
    expected = len(customers) + len(invoices)
    applied = inbox.get("applied", (0, 0))
    ok = (contacts_changed == len(phones) and invoices_changed >= len(invoices)
          and applied[0] == expected and sum(n for n, _ in inbox.values()) == expected)
    return {"ok": ok, "contacts_changed": contacts_changed, "invoices_changed": invoices_changed,
            "inbox": {k: v[0] for k, v in inbox.items()}, "deliveries": sum(d for _, d in inbox.values())}


def run(st: Stack, tenant: str, realm: str, changes: int) -> dict[str, Any]:
    from crm_qbo_plugin.inbound.enqueue import enqueue_poll
    from crm_qbo_plugin.state import get_state

    assert st.sandbox is not None
    rest = Rest(st.sandbox, realm)
    customers = pick_ids(st, tenant, "contact", changes // 2, 0)
    invoices = pick_ids(st, tenant, "invoice", changes - changes // 2, 0)
    workers = st.start_workers(1, "w2-worker")

    def poll_once() -> float:
        already = int(scalar(st, "SELECT COUNT(*) FROM qbo_sync_run WHERE tenant_id = :t AND kind = 'poll'", t=tenant))
        enqueue_poll(get_state(st.app()), tenant)

        def finished() -> bool:
            found = rows(st, "SELECT status FROM qbo_sync_run WHERE tenant_id = :t AND kind = 'poll' ORDER BY id",
                         t=tenant)
            return len(found) > already and found[-1][0] != "running"

        return wait_until(finished, "the CDC poll", POLL_TIMEOUT, workers, interval=0.02)

    # A worker's first job pays its one-off costs (importing the job modules, SQLAlchemy compiling
    # each statement once); a scheduler's poll every few minutes in a long-running worker does not.
    # So a poll that finds nothing runs first, its CPU reported apart, and the measured poll is warm.
    first = poll_once()
    first_usage = plugin_usage(workers)
    for proc in workers:
        proc.mark()
    make_changes(rest, customers, invoices, "W2")
    st.sandbox.stats(reset=True)
    started = time.perf_counter()
    wall = poll_once()
    usage = plugin_usage(workers)
    counts = api_counts(st.sandbox.stats(reset=True), [realm])
    run_row = rows(st, "SELECT status, counts, errors FROM qbo_sync_run WHERE tenant_id = :t AND kind = 'poll' "
                       "ORDER BY id DESC LIMIT 1", t=tenant)[0]
    for proc in workers:
        st.stop(proc)
    correct = check_changes(st, tenant, customers, invoices, "cdc")
    correct["ok"] = correct["ok"] and run_row[0] == "succeeded"
    return {"changes": changes, "records_scanned": None, "wall_s": round(wall, 3), "elapsed_s": round(time.perf_counter() - started, 3),
            "first_poll": {"wall_s": round(first, 3), "cpu_s": first_usage["cpu_s"], "changes": 0},
            **usage, **counts, "run": {"status": run_row[0], "counts": run_row[1], "errors": run_row[2]},
            "correct": correct}
