"""W4: push N new invoices (one new contact per ten invoices) from the CRM to an empty company,
through the plugin's outbox and several `crm-qbo worker` processes.

The CRM's records are created and sent first, by the harness, with the reference CRM's own
functions (each commit publishes the host events: outbox row + rq job); that part is timed apart
("publish"). Then the workers start and the clock runs until every row is settled. The harness
plays the scheduler's sweeper each second (re-enqueueing rows whose retry time came). It also reads
the sandbox's 429 counter each second, so 429s after the warm-up (QBO's first minute) are known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bench.infra import Stack, connect, new_location
from bench.measure import api_counts, plugin_usage, rows, scalar, wait_until
from bench.sandbox_rest import Rest

PUSH_TIMEOUT = 3600.0
INVOICES_PER_CONTACT = 10


def publish_invoices(st: Stack, tenant: str, invoices: int, tag: str) -> float:
    """Create ceil(N/10) contacts and N sent invoices in the CRM; returns the seconds it took."""
    from reference_crm import contacts
    from reference_crm import invoices as crm_invoices
    from reference_crm.db import session
    from reference_crm.state import crm_state

    app = st.app()
    crm = crm_state(app)
    started = time.perf_counter()
    with app.app_context():
        for group in range((invoices + INVOICES_PER_CONTACT - 1) // INVOICES_PER_CONTACT):
            with session(crm.engine) as db:
                contact, event = contacts.create_contact(db, tenant, {
                    "first_name": "Push", "last_name": f"{tag} {group:06d}",
                    "email": f"push-{tag.lower()}-{group:06d}@bench.example.com", "phone": "", "company": ""})
                crm.commit(db, tenant, [event])
                for k in range(min(INVOICES_PER_CONTACT, invoices - group * INVOICES_PER_CONTACT)):
                    row = crm_invoices.create_invoice(db, tenant, {"contact_id": contact.id, "lines": [
                        {"name": "Consulting", "quantity": Decimal(1 + k % 3), "unit_price": Decimal("120.00")}]})
                    crm.commit(db, tenant, [crm_invoices.send_invoice(db, row)])
    return time.perf_counter() - started


def crm_rows_settled(st: Stack, tenants: list[str]) -> bool:
    marks = ", ".join(f"'{t}'" for t in tenants)
    left = scalar(st, f"SELECT COUNT(*) FROM qbo_outbox WHERE origin = 'crm' AND tenant_id IN ({marks}) "  # noqa: S608
                      "AND status IN ('pending', 'processing')")
    return int(left) == 0


class Ticker:
    """Each second: the sweeper's job, and a sample of the sandbox's 429 counter (QuickBooks' sandbox,
    or the `stats` of another, e.g. Xero's)."""

    def __init__(self, st: Stack, stats: Callable[[], dict[str, Any]] | None = None) -> None:
        from crm_qbo_plugin.state import get_state

        self.st = st
        self.stats = stats
        self.state = get_state(st.app())
        self.started = time.perf_counter()
        self.last = 0.0
        self.samples: list[tuple[float, int]] = []

    def __call__(self) -> None:
        from crm_qbo_plugin.outbound.sweeper import sweep_outbox

        now = time.perf_counter()
        if now - self.last < 1.0:
            return
        self.last = now
        sweep_outbox(self.state)
        if self.stats is None:
            assert self.st.sandbox is not None
            self.stats = self.st.sandbox.stats
        self.samples.append((now - self.started, int(self.stats().get("throttled", 0))))

    def throttled_after(self, seconds: float) -> int:
        """429s counted after `seconds` of the run (the warm-up)."""
        before = [n for t, n in self.samples if t <= seconds]
        total = self.samples[-1][1] if self.samples else 0
        return total - (before[-1] if before else 0)


def check_push(st: Stack, rest: Rest, tenant: str, invoices: int) -> dict[str, Any]:
    from crm_qbo_plugin.store.links import CONTACT

    contacts = (invoices + INVOICES_PER_CONTACT - 1) // INVOICES_PER_CONTACT
    qbo_invoices = list(rest.all("Invoice"))
    qbo_customers = list(rest.all("Customer"))
    doc_numbers = {str(i.get("DocNumber")) for i in qbo_invoices}
    names = {str(c.get("DisplayName")) for c in qbo_customers}
    outbox = {status: int(n) for status, n in rows(
        st, "SELECT status, COUNT(*) FROM qbo_outbox WHERE tenant_id = :t AND origin = 'crm' GROUP BY status", t=tenant)}
    links = {kind: (int(n), int(d)) for kind, n, d in rows(
        st, "SELECT kind, COUNT(*), COUNT(DISTINCT qbo_id) FROM qbo_link WHERE tenant_id = :t AND status = 'synced' "
            "GROUP BY kind", t=tenant)}
    ok = (len(qbo_invoices) == invoices and len(doc_numbers) == invoices and len(qbo_customers) == contacts
          and len(names) == contacts and links.get("invoice") == (invoices, invoices)
          and links.get(CONTACT) == (contacts, contacts) and outbox.get("failed", 0) == 0
          and outbox.get("pending", 0) == 0 and outbox.get("processing", 0) == 0)
    return {"ok": ok, "qbo_invoices": len(qbo_invoices), "distinct_doc_numbers": len(doc_numbers),
            "qbo_customers": len(qbo_customers), "outbox": outbox,
            "invoice_links": links.get("invoice", (0, 0))[0], "contact_links": links.get(CONTACT, (0, 0))[0]}


def run(st: Stack, realm: str, invoices: int, workers_count: int, warmup_s: float) -> dict[str, Any]:
    assert st.sandbox is not None
    tenant = new_location(st, "W4 push")
    connect(st, tenant, realm)
    publish_s = publish_invoices(st, tenant, invoices, "W4")
    st.sandbox.stats(reset=True)  # before the workers start: they take queued jobs at once
    workers = st.start_workers(workers_count, "w4-worker", hold=True)
    ticker = Ticker(st)
    wall = wait_until(lambda: crm_rows_settled(st, [tenant]), "the push", PUSH_TIMEOUT, workers,
                                        tick=ticker, interval=0.1)
    usage = plugin_usage(workers)
    counts = api_counts(st.sandbox.stats(reset=True), [realm])
    for proc in workers:
        st.stop(proc)
    correct = check_push(st, Rest(st.sandbox, realm), tenant, invoices)
    st.sandbox.stats(reset=True)
    contacts = (invoices + INVOICES_PER_CONTACT - 1) // INVOICES_PER_CONTACT
    return {"tenant": tenant, "invoices": invoices, "customers": contacts, "records": invoices + contacts,
            "workers": workers_count, "publish_s": round(publish_s, 3), "wall_s": round(wall, 3),
            "invoices_per_s": round(invoices / wall, 1) if wall else None, **usage, **counts,
            "throttled_after_warmup": ticker.throttled_after(warmup_s), "correct": correct}
