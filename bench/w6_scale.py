"""W6: many tenants on PostgreSQL, served by 1, 2 and 4 `crm-qbo worker` processes and 2 web processes.

Per worker count, N fresh tenants, each connected to its own company (C customers + C invoices):
- phase "import + push": each tenant's P new CRM invoices (P/10 new contacts) are published (rows
  and jobs queued: a backlog), every import is queued, then the workers start; the clock runs
  until every import has finished and every CRM event is settled (the harness plays the sweeper);
- phase "webhooks": K customers of each tenant are changed in QuickBooks, then one signed notice
  each is sent to the two web processes (half each, open loop); the clock runs until every notice
  is applied.
Reported: throughput, the p99 latency from a CRM event to its QBO write (the invoice link's
updated_at minus the later of the event's occurred_at and the moment the workers started — the
events are a backlog queued before, so this is the wait a backlog sees), 429s, and fairness (the
slowest tenant's finish vs the median tenant's). Timings are reported, never asserted.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench.infra import Proc, Stack
from bench.measure import api_counts, median, percentile, plugin_usage, rows, wait_until
from bench.sandbox_rest import Rest
from bench.w1_import import check_import
from bench.w2_poll import check_changes, make_changes, pick_ids
from bench.w3_webhooks import notice_body, send_burst, start_web
from bench.w4_push import Ticker, crm_rows_settled
from bench.w5_tenants import check_push_mixed, queue_tenants

W6_TIMEOUT = 3600.0
WEB_PROCESSES = 2
NOTICES_PER_SECOND = 200.0  # the burst's pace over all tenants


def _aware(value: Any) -> datetime:
    found = datetime.fromisoformat(value) if isinstance(value, str) else value
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _marks(tenants: list[str]) -> str:
    return ", ".join(f"'{t}'" for t in tenants)


def imports_finished(st: Stack, tenants: list[str]) -> dict[str, datetime]:
    """Each tenant's finished import run's end (one query for all)."""
    found = rows(st, f"SELECT tenant_id, finished_at FROM qbo_sync_run WHERE kind = 'import' "  # noqa: S608
                     f"AND status <> 'running' AND tenant_id IN ({_marks(tenants)})")
    return {str(t): _aware(at) for t, at in found if at is not None}


def push_latencies(st: Stack, tenants: list[str], started: datetime) -> tuple[list[float], dict[str, datetime]]:
    """Seconds from each CRM invoice event (or the workers' start, if later) to its link's last
    write, and each tenant's last such write."""
    found = rows(st, "SELECT o.tenant_id, o.occurred_at, l.updated_at FROM qbo_outbox o JOIN qbo_link l "  # noqa: S608
                     "ON l.tenant_id = o.tenant_id AND l.kind = 'invoice' AND l.crm_id = o.subject_id "
                     f"WHERE o.origin = 'crm' AND o.event_type LIKE 'invoice%' AND l.status = 'synced' "
                     f"AND o.tenant_id IN ({_marks(tenants)})")
    latencies: list[float] = []
    last: dict[str, datetime] = {}
    for tenant, occurred, written in found:
        written_at = _aware(written)
        latencies.append(max(0.0, (written_at - max(_aware(occurred), started)).total_seconds()))
        last[str(tenant)] = max(last.get(str(tenant), written_at), written_at)
    return latencies, last


def _counts(st: Stack) -> dict[str, Any]:
    """The sandbox's counters over every realm, the in-flight peak as one number (the largest)."""
    assert st.sandbox is not None
    found = api_counts(st.sandbox.stats(reset=True))
    found["max_in_flight"] = max((found.get("max_in_flight") or {"": 0}).values())
    return found


def inbox_applied(st: Stack, tenants: list[str]) -> bool:
    left = rows(st, f"SELECT COUNT(*) FROM qbo_inbox WHERE source = 'webhook' AND status = 'pending' "  # noqa: S608
                    f"AND tenant_id IN ({_marks(tenants)})")[0][0]
    return int(left) == 0


def run_once(st: Stack, webs: list[tuple[Proc, str]], realms: list[str], workers_count: int, customers: int,
             invoices: int, push: int, notices: int, label: str) -> dict[str, Any]:
    assert st.sandbox is not None
    tenants, publish_s = queue_tenants(st, realms, push, f"W6 {label} tenant {{:03d}}", f"W6{label}T{{:03d}}")
    workers = st.start_workers(workers_count, f"w6-worker-{label}", hold=True)
    procs: list[Proc] = [*workers, *(web for web, _url in webs)]
    started_at = datetime.now(UTC)
    ticker = Ticker(st)
    import_wall = wait_until(
        lambda: len(imports_finished(st, tenants)) == len(tenants) and crm_rows_settled(st, tenants),
        "W6's imports and pushes", W6_TIMEOUT, procs, tick=ticker, interval=0.2)
    import_usage = plugin_usage(workers)
    import_counts = _counts(st)
    latencies, last_push = push_latencies(st, tenants, started_at)
    finished = imports_finished(st, tenants)
    finish_s = {t: (max(finished[t], last_push.get(t, finished[t])) - started_at).total_seconds() for t in tenants}

    # the webhook burst (changes made in QuickBooks first, not timed)
    bodies: list[bytes] = []
    changed: dict[str, list[str]] = {}
    for n, (tenant, realm) in enumerate(zip(tenants, realms, strict=True)):
        rest = Rest(st.sandbox, realm)
        ids = pick_ids(st, tenant, "contact", notices, 0)
        make_changes(rest, ids, [], f"W6{label}{n}")
        changed[tenant] = ids
        marks = ", ".join(f"'{i}'" for i in ids)
        for body in rest.query(f"SELECT * FROM Customer WHERE Id IN ({marks}) MAXRESULTS 1000").get("Customer", []):  # noqa: S608
            bodies.append(notice_body(realm, body))
    st.sandbox.stats(reset=True)
    for proc in procs:
        proc.mark()
    seconds = max(1.0, len(bodies) / NOTICES_PER_SECOND)
    acks: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def burst(url: str, part: list[bytes]) -> None:
        found, codes = send_burst(url, part, seconds)
        with lock:
            acks.extend(found)
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count

    hook_started = time.perf_counter()
    senders = [threading.Thread(target=burst, args=(url, bodies[i::WEB_PROCESSES])) for i, (_web, url) in enumerate(webs)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    wait_until(lambda: inbox_applied(st, tenants), "W6's webhook notices", W6_TIMEOUT, procs, interval=0.1)
    hook_wall = time.perf_counter() - hook_started
    hook_workers = plugin_usage(workers)
    hook_web = plugin_usage([web for web, _url in webs])
    hook_counts = _counts(st)
    for proc in workers:
        st.stop(proc)

    checks = []
    pushed_customers = (push + 9) // 10
    for tenant, realm in zip(tenants, realms, strict=True):
        imported = check_import(st, tenant, customers + pushed_customers, invoices + push)
        pushed = check_push_mixed(st, Rest(st.sandbox, realm), tenant, customers, invoices, push, pushed_customers)
        hooked = check_changes(st, tenant, changed[tenant], [], "webhook")
        checks.append(imported["ok"] and pushed["ok"] and hooked["ok"])
    st.sandbox.stats(reset=True)
    records = len(tenants) * (customers + invoices + push + pushed_customers)
    finishes = sorted(finish_s.values())
    return {
        "workers": workers_count, "web_processes": WEB_PROCESSES, "tenants": len(tenants), "publish_s": round(publish_s, 3),
        "import_push": {"wall_s": round(import_wall, 3), "records": records, **import_usage, **import_counts},
        "webhooks": {"notices": len(bodies), "burst_s": round(seconds, 1), "wall_s": round(hook_wall, 3),
                     "ack_p99_ms": round(percentile(acks, 99) * 1000, 2), "statuses": {str(k): v for k, v in statuses.items()},
                     "workers": hook_workers, "web": hook_web, **hook_counts},
        "wall_s": round(import_wall + hook_wall, 3),
        "import_push_records_per_s": round(records / import_wall, 1),
        "records_per_s": round((records + len(bodies)) / (import_wall + hook_wall), 1),
        "invoices_per_s": round(len(tenants) * push / import_wall, 1),
        "latency_events": len(latencies), "latency_p50_s": round(median(latencies), 3), "latency_p99_s": round(percentile(latencies, 99), 3),
        "throttled_429": import_counts["throttled_429"] + hook_counts["throttled_429"],
        "slowest_tenant_s": round(finishes[-1], 3), "median_tenant_s": round(median(finishes), 3),
        "fairness": round(finishes[-1] / median(finishes), 2) if median(finishes) else None,
        "worker_cpu_s": round(import_usage["cpu_s"] + hook_workers["cpu_s"], 3),
        "web_cpu_s": hook_web["cpu_s"],
        "correct": {"ok": all(checks), "tenants_ok": sum(1 for ok in checks if ok)},
    }


def run(st: Stack, realm_sets: list[list[str]], worker_counts: tuple[int, ...], customers: int, invoices: int,
        push: int, notices: int) -> dict[str, Any]:
    """One run per worker count, each on its own set of fresh tenants and companies (the bench runs
    it on PostgreSQL only; the tests run it on the suite's database)."""
    from bench.measure import purge_echoes

    runs = []
    webs = [start_web(st, f"w6-web-{i}") for i in range(WEB_PROCESSES)]  # the same two for every run
    try:
        for count, realms in zip(worker_counts, realm_sets, strict=True):
            runs.append(run_once(st, webs, realms, count, customers, invoices, push, notices, f"{count}w"))
            purge_echoes(st)
    finally:
        for web, _url in webs:
            st.stop(web)
    by_workers = {r["workers"]: r for r in runs}
    scaling = None
    if 1 in by_workers and 2 in by_workers and by_workers[1]["import_push_records_per_s"]:
        # the import + push phase is work-bound; the webhook phase is paced by its senders
        scaling = round(by_workers[2]["import_push_records_per_s"] / by_workers[1]["import_push_records_per_s"], 2)
    return {"runs": runs, "scaling_1_to_2": scaling,
            "per_tenant": {"import_customers": customers, "import_invoices": invoices, "push_invoices": push,
                           "webhook_notices": notices}}
