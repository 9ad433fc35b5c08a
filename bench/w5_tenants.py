"""W5: T tenants at once, each connected to its own company, each importing C customers and C
invoices while pushing P new invoices (P/10 new contacts), on a shared pool of workers.

The push events are published first (rows + jobs queued), then every import is queued, then the
workers start: the clock runs until every import has finished and every CRM event is settled.
"""

from __future__ import annotations

import time
from typing import Any

from bench.infra import Stack, connect, new_location
from bench.measure import api_counts, plugin_usage, wait_until
from bench.sandbox_rest import Rest
from bench.w1_import import check_import, import_done
from bench.w4_push import Ticker, check_push, crm_rows_settled, publish_invoices

W5_TIMEOUT = 3600.0


def queue_tenants(st: Stack, realms: list[str], push: int, name: str, tag: str) -> tuple[list[str], float]:
    """One connected location per realm with `push` invoices published and its import queued
    (`name` and `tag` are formats of the tenant's index); returns the tenants and the publish time.
    The sandbox's counters start here: workers started next take the queued jobs at once."""
    from crm_qbo_plugin.inbound.importer import start_import
    from crm_qbo_plugin.state import get_state

    assert st.sandbox is not None
    state = get_state(st.app())
    tenants = []
    for n, realm in enumerate(realms):
        tenant = new_location(st, name.format(n))
        connect(st, tenant, realm, import_invoices=True)
        tenants.append(tenant)
    publish_s = sum(publish_invoices(st, tenant, push, tag.format(n)) for n, tenant in enumerate(tenants))
    for tenant in tenants:
        start_import(state, tenant)
    st.sandbox.stats(reset=True)
    return tenants, publish_s


def run(st: Stack, realms: list[str], customers: int, invoices: int, push: int, workers_count: int) -> dict[str, Any]:
    assert st.sandbox is not None
    tenants, publish_s = queue_tenants(st, realms, push, "W5 tenant {:02d}", "W5T{:02d}")
    workers = st.start_workers(workers_count, "w5-worker", hold=True)
    ticker = Ticker(st)
    started = time.perf_counter()
    imports_done: dict[str, float] = {}

    def finished() -> bool:
        for tenant in tenants:
            if tenant not in imports_done and import_done(st, tenant):
                imports_done[tenant] = time.perf_counter() - started
        return len(imports_done) == len(tenants) and crm_rows_settled(st, tenants)

    wall = wait_until(finished, "twenty tenants' imports and pushes", W5_TIMEOUT, workers, tick=ticker, interval=0.2)
    usage = plugin_usage(workers)
    stats = st.sandbox.stats(reset=True)
    counts = api_counts(stats)
    for proc in workers:
        st.stop(proc)
    checks = []
    pushed_customers = (push + 9) // 10
    for tenant, realm in zip(tenants, realms, strict=True):
        # the CRM and its links hold the imported records plus the ones this tenant pushed
        imported = check_import(st, tenant, customers + pushed_customers, invoices + push)
        rest = Rest(st.sandbox, realm)
        pushed = check_push_mixed(st, rest, tenant, customers, invoices, push, pushed_customers)
        checks.append({"tenant": tenant, "import_ok": imported["ok"], "push_ok": pushed["ok"],
                       "import": imported, "push": pushed})
    st.sandbox.stats(reset=True)
    records = len(tenants) * (customers + invoices + push + pushed_customers)
    return {"tenants": len(tenants), "per_tenant": {"import_customers": customers, "import_invoices": invoices,
                                                    "push_invoices": push, "push_customers": pushed_customers},
            "records": records, "workers": workers_count, "publish_s": round(publish_s, 3), "wall_s": round(wall, 3),
            "slowest_import_s": round(max(imports_done.values(), default=0.0), 3), **usage, **counts,
            "max_in_flight_any_realm": max((stats.get("max_in_flight") or {0: 0}).values()),
            "correct": {"ok": all(c["import_ok"] and c["push_ok"] for c in checks),
                        "tenants_ok": sum(1 for c in checks if c["import_ok"] and c["push_ok"]),
                        "first_failure": next((c for c in checks if not (c["import_ok"] and c["push_ok"])), None)}}


def check_push_mixed(st: Stack, rest: Rest, tenant: str, customers: int, invoices: int, push: int,
                     pushed_customers: int) -> dict[str, Any]:
    """check_push for a company that also holds the seeded records: compare counts above the seed."""
    found = check_push(st, rest, tenant, push)
    ok = (found["qbo_invoices"] == invoices + push and found["qbo_customers"] == customers + pushed_customers
          and found["invoice_links"] == invoices + push and found["outbox"].get("failed", 0) == 0
          and found["outbox"].get("pending", 0) == 0)
    return {**found, "ok": ok}
