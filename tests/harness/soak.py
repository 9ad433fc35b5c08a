"""`python -m tests.harness.soak --minutes 20`: the soak test.

Starts the real processes (tests/harness/stack.py), connects a few CRM locations to sandbox
companies and one (`--xero-tenants`) to a Xero sandbox organisation, runs the randomized two-way workload (tests/harness/workload.py) while injecting faults
(tests/harness/faults.py), then lets everything settle and checks the books: `crm-qbo reconcile`
for every QuickBooks tenant must exit 0 (and for a Xero tenant once it compares Xero; the Xero
books are compared directly either way, tests/harness/xero_check.py), and the harness's own count of what it created on each side must
match what each side holds (more is a duplicate, fewer is a lost record). Prints the figures and
exits 0 only if everything matches.

Settling stands in for time passing: once faults stop, every worker and scheduler is SIGKILLed
(they are crash-safe) and restarted, and the leases, locks and cool-downs that a killed process
would have left to run out (outbox leases and push locks of 5 minutes, the realm lock's 2 minutes, a 429's minute)
are expired at once instead of waited for; webhooks Intuit would retry later are retried now
(the sandbox's "deliver, force") and every tenant gets a "Sync now" (a CDC poll and its backoffs due).
A tenant the workload left disconnected is reconnected, and every change the plugin kept as "not
synced" while a tenant was disconnected is retried, as a user would click Retry on the card; none
may be left "not synced" at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from crm_qbo_plugin.store.tables import Connection, InboxNotice, Link, OutboxEvent
from tests.harness.faults import ALL_KINDS, Faults
from tests.harness.stack import Stack, stack
from tests.harness.workload import XERO, QboUser, Tenant, Unavailable, Workload
from tests.harness.xero_check import check_xero_tenant, xero_expected

XERO_WEIGHT = 0.4  # a Xero tenant's share of the steps: Xero allows an organisation 60 calls a minute


@dataclass
class Options:
    seconds: float = 60.0
    # the workload goes on past `seconds` until this many operations and faults are done (a slow
    # machine gets the same amount of work, not a thinner run), for at most three times `seconds`
    min_operations: int = 0
    min_faults: int = 0
    tenants: int = 2
    xero_tenants: int = 1
    workers: int = 3
    schedulers: int = 2  # two on purpose: one leads, the other must stay idle (A12)
    seed: int = 1
    fault_every: float = 4.0  # mean seconds between faults
    disconnect_weight: float = 0.15  # how often a tenant is disconnected or reconnected (see Workload.step)
    op_pause: float = 0.05
    kinds: tuple[str, ...] = ALL_KINDS
    settle_timeout: float = 240.0
    keep: bool = False
    workdir: Path | None = None
    database_url: str | None = None
    quiet: bool = False


@dataclass
class Report:
    ok: bool = False
    seconds: float = 0.0
    operations: Counter[str] = field(default_factory=Counter)
    unavailable: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    crash_restarts: Counter[str] = field(default_factory=Counter)
    sandbox_faults_fired: int = 0
    retries: int = 0
    duplicates: int = 0
    lost: int = 0
    field_differences: list[str] = field(default_factory=list)
    reconcile: dict[str, int] = field(default_factory=dict)
    reconcile_output: dict[str, str] = field(default_factory=dict)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_outbox: list[str] = field(default_factory=list)
    dead_inbox: int = 0
    not_connected: list[str] = field(default_factory=list)
    connection_changes: Counter[str] = field(default_factory=Counter)
    held_retried: int = 0  # "not synced" while disconnected, or contended conflicts: retried when settling
    still_held: list[str] = field(default_factory=list)  # "not synced" after settling: never sent
    crm_only: list[str] = field(default_factory=list)  # the workload makes no CRM-only changes
    settled: bool = False
    settle_seconds: float = 0.0
    workdir: str = ""

    def problems(self) -> list[str]:
        found = []
        if not self.settled:
            found.append("the system did not settle")
        found += [f"reconcile {t} exited {c}" for t, c in self.reconcile.items() if c != 0]
        if self.duplicates:
            found.append(f"{self.duplicates} duplicate(s)")
        if self.lost:
            found.append(f"{self.lost} lost record(s)")
        found += self.field_differences + [f"outbox row failed: {f}" for f in self.failed_outbox]
        found += [f"{t} is not connected any more" for t in self.not_connected]
        found += [f"still not synced: {r}" for r in self.still_held]
        found += [f"marked changed in the CRM only, but never changed locally: {r}" for r in self.crm_only]
        return found

    def summary(self) -> str:
        lines = [
            f"soak: {self.seconds:.0f}s of workload, settled in {self.settle_seconds:.0f}s",
            f"  operations: {sum(self.operations.values())} ({_fmt(self.operations)})",
            f"  not done while a side was down: {sum(self.unavailable.values())}",
            f"  faults injected: {sum(self.faults.values())} ({_fmt(self.faults)}); sandbox fault answers: {self.sandbox_faults_fired}",
            f"  processes restarted after dying on their own: {sum(self.crash_restarts.values())} ({_fmt(self.crash_restarts)})",
            f"  disconnects: {self.connection_changes['disconnect']}, reconnects: {self.connection_changes['reconnect']}; "
            f"records retried as the card asks (not synced while disconnected, contended conflicts): {self.held_retried}",
            f"  retries: {self.retries}",
            f"  duplicates: {self.duplicates}",
            f"  lost: {self.lost}",
            f"  dead-lettered inbound notices: {self.dead_inbox}",
        ]
        for tenant, counts in self.counts.items():
            lines.append(f"  {tenant}: {json.dumps(counts, sort_keys=True)}; reconcile exit {self.reconcile.get(tenant)}")
        problems = self.problems()
        lines.append("RESULT: " + ("OK — the books match, nothing duplicated, nothing lost" if not problems
                                   else "FAILED — " + "; ".join(problems)))
        if not self.ok:
            lines.append(f"  logs: {self.workdir}/logs")
        return "\n".join(lines)


def _fmt(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


# -- settling -------------------------------------------------------------------------------------
def fast_forward(st: Stack) -> None:
    """What a killed process left behind runs out now instead of after its TTL (see module doc)."""
    from crm_qbo_plugin.store.types import utcnow

    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    with st.engine.begin() as conn:
        conn.execute(table.update().where(table.c.status == "processing").values(lease_until=utcnow()))
    client = st.redis()
    try:
        for pattern in ("crm-qbo:inbound:realm:*", "crm-qbo:inbound:drain-queued:*", "crm-qbo:inbound:poll-queued:*",
                        "crm-qbo:inbound:xero-poll-queued:*", "crm-qbo:push:*", "*cooldown*"):
            for key in client.scan_iter(pattern):
                client.delete(key)
    finally:
        client.close()


def sync_now(st: Stack, tenants: list[Tenant]) -> None:
    """The card's "Sync now" for every tenant: a poll queued (QuickBooks' CDC or Xero's
    modified-since), backoffs due now."""
    from crm_qbo_plugin.inbound.enqueue import request_sync
    from crm_qbo_plugin.outbound.sweeper import resend_waiting
    from crm_qbo_plugin.state import get_state
    from crm_qbo_plugin.store.connections import connection_for

    app = st.app()
    state = get_state(app)
    with app.app_context():
        for tenant in tenants:
            conn = connection_for(state.engine, tenant.location)
            if conn is not None and conn.status == "connected":
                request_sync(state, conn)
            resend_waiting(state, tenant.location)


def retry_held(st: Stack, tenants: list[Tenant]) -> int:
    """Click Retry, as the card asks, on every "not synced" record (changed while disconnected) and every
    conflict whose QuickBooks invoice "kept changing" while it was updated (two stale SyncTokens in a row,
    e.g. a QuickBooks user's payment racing the push: the card says to check it in QuickBooks and retry);
    returns how many."""
    from crm_qbo_plugin.outbound.records import retry_record
    from crm_qbo_plugin.state import get_state

    table = Link.__table__  # type: ignore[attr-defined]
    with st.engine.connect() as conn:
        held = list(conn.execute(sa.select(table.c.tenant_id, table.c.kind, table.c.crm_id).where(
            sa.or_(table.c.status == "not_synced",
                   sa.and_(table.c.status == "conflict", table.c.last_error.contains("kept changing"))),
            table.c.tenant_id.in_([t.location for t in tenants]))))
    app = st.app()
    with app.app_context():
        for tenant, kind, crm_id in held:
            retry_record(get_state(app), tenant, kind, crm_id)
    return len(held)


def busy(st: Stack) -> list[str]:
    """What still moves: open outbox rows, pending inbox notices, queued or running jobs, webhooks."""
    return work_left(st)[0]


def work_left(st: Stack) -> tuple[list[str], int]:
    """`busy`'s reasons, and how many rows, notices and jobs are still open (to see progress)."""
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    reasons = []
    outbox, inbox = OutboxEvent.__table__, InboxNotice.__table__  # type: ignore[attr-defined]
    with st.engine.connect() as conn:
        open_rows = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.status.in_(["pending", "processing"]))).scalar_one()
        pending = conn.execute(sa.select(sa.func.count()).select_from(inbox).where(inbox.c.status == "pending")).scalar_one()
    if open_rows:
        reasons.append(f"{open_rows} outbox rows open")
    if pending:
        reasons.append(f"{pending} inbound notices pending")
    client = st.redis()
    try:
        live = {p.pid for p in st.workers() if p.alive()}
        queued = sum(len(q) for q in Queue.all(connection=client, serializer=JSONSerializer))
        running = [w for w in Worker.all(connection=client) if w.pid in live and w.get_state() == "busy"]
    finally:
        client.close()
    if queued:
        reasons.append(f"{queued} jobs queued")
    if running:
        reasons.append(f"{len(running)} workers busy")
    answer = requests.post(f"{st.sandbox_url}/_sandbox/webhooks/deliver", json={"force": True}, timeout=60).json()
    if answer["pending"] or answer["failed"] or answer["delivered"]:
        reasons.append(f"webhooks {answer}")
    answer = requests.post(f"{st.xero_url}/_sandbox/webhooks/deliver", json={"force": True}, timeout=60).json()
    if answer["pending"] or answer["failed"] or answer["delivered"]:
        reasons.append(f"Xero webhooks {answer}")
    return reasons, open_rows + pending + queued


def settle(st: Stack, faults: Faults, workload: Workload, timeout: float, say: Any, report: Report) -> bool:
    tenants = workload.tenants
    faults.down.clear()
    faults.clear()
    for proc in st.workers() + st.schedulers():
        proc.kill()
    fast_forward(st)
    for proc in st.workers() + st.schedulers():
        st.restart(proc)
    for tenant in tenants:
        for attempt in range(10):  # as a user clicks Connect again after "Try again" (a throttled org)
            if tenant.connected:
                break
            try:
                workload.reconnect(tenant)
            except Unavailable:
                time.sleep(3.0 * (attempt + 1))
    # A backlog worked off at QuickBooks' rate limits (every record held while a tenant was
    # disconnected is retried below) may take longer than `timeout`: settling fails only when
    # nothing got done for `timeout` seconds, or after four times `timeout` in all.
    started = time.monotonic()
    deadline = started + timeout
    for round_ in (1, 2):  # the second round's poll sees whatever the first one's work changed
        report.held_retried += retry_held(st, tenants)
        sync_now(st, tenants)
        calm, nudged, least = 0, time.monotonic(), None
        while calm < 3:
            now = time.monotonic()
            if now > deadline or now - started > 4 * timeout:
                say(f"  still busy after {now - started:.0f}s: {busy(st)}")
                return False
            faults.supervise()
            reasons, left = work_left(st)
            if least is None or left < least:
                least, deadline = left, now + timeout
            calm = calm + 1 if not reasons else 0
            if reasons and time.monotonic() - nudged > 20:  # backoffs that came due meanwhile
                nudged = time.monotonic()
                sync_now(st, tenants)
            time.sleep(1.0)
        say(f"  settle round {round_} done")
    return True


# -- checking -------------------------------------------------------------------------------------
def reconcile(st: Stack, tenant: str) -> tuple[int, str]:
    done = subprocess.run(st.plugin_argv("reconcile", tenant), env=st.env, capture_output=True, text=True,  # noqa: S603
                          timeout=300, check=False)
    return done.returncode, (done.stdout + done.stderr)[-4000:]


def _page(qbo: QboUser, entity: str, where: str = "") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = qbo.query(f"SELECT * FROM {entity}{where} STARTPOSITION {len(rows) + 1} MAXRESULTS 1000")
        rows += page
        if len(page) < 1000:
            return rows


def check(st: Stack, workload: Workload, report: Report) -> None:
    outbox, inbox, links, conns = (t.__table__ for t in (OutboxEvent, InboxNotice, Link, Connection))  # type: ignore[attr-defined]
    with st.engine.connect() as conn:
        # A failed row is lost work unless a later row of the same record was pushed: a push sends the
        # record's whole current state, so that later push carried the failed row's change too.
        later = outbox.alias("later")
        superseded = sa.exists().where(later.c.tenant_id == outbox.c.tenant_id, later.c.subject_id == outbox.c.subject_id,
                                       later.c.id > outbox.c.id, later.c.status == "done")
        report.failed_outbox = [f"{r.tenant_id} {r.event_type} {r.subject_id}: {r.last_error}" for r in conn.execute(
            sa.select(outbox).where(outbox.c.status == "failed", ~superseded))]
        report.dead_inbox = conn.execute(sa.select(sa.func.count()).select_from(inbox).where(
            inbox.c.status == "dead")).scalar_one()
        report.retries = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(outbox.c.attempts - 1), 0)).where(
            outbox.c.attempts > 1)).scalar_one())
        report.not_connected = [r.tenant_id for r in conn.execute(sa.select(conns).where(conns.c.status != "connected"))]
        report.still_held = [f"{r.tenant_id} {r.kind} {r.crm_id}: {r.last_error}" for r in conn.execute(
            sa.select(links).where(links.c.status == "not_synced"))]
        report.crm_only = [f"{r.tenant_id} {r.kind} {r.crm_id}: {r.last_error}" for r in conn.execute(
            sa.select(links).where(links.c.status == "crm_only"))]
        contact_links = {(r.tenant_id, r.crm_id): r.qbo_id for r in conn.execute(
            sa.select(links).where(links.c.kind == "contact"))}
    for log in (st.workdir / "logs").glob("*.log"):
        report.retries += log.read_text(errors="replace").count("qbo.request.retrying")
    stats = requests.get(f"{st.sandbox_url}/_sandbox/stats", timeout=30).json()
    report.sandbox_faults_fired = int(stats.get("faults_injected") or 0)

    for tenant in workload.tenants:
        code, output = reconcile(st, tenant.location)
        report.reconcile[tenant.location] = code
        report.reconcile_output[tenant.location] = output
        if tenant.provider == XERO:
            _check_xero(st, workload, tenant, report)
            continue
        crm = workload.crm[tenant.location]
        qbo = workload.qbo[tenant.location]
        contacts = crm.call("GET", "/contacts")
        crm_invoices = crm.call("GET", "/invoices")
        crm_payments = crm.call("GET", "/payments")
        customers = _page(qbo, "Customer")
        actual = {
            "contacts": len(contacts), "customers": len(customers),
            "crm_invoices": len(crm_invoices), "qbo_invoices": len(_page(qbo, "Invoice")),
            "payments": len(_page(qbo, "Payment")), "sales_receipts": len(_page(qbo, "SalesReceipt")),
            "crm_payments": len(crm_payments),
        }
        pushed = workload.pushed(tenant)
        expected = tenant.expected(pushed, workload.in_qbo(tenant))
        for name, want in expected.items():
            got = actual[name]
            report.duplicates += max(0, got - want)
            report.lost += max(0, want - got)
        crm_emails = sorted(e for _, e in tenant.contacts + tenant.customers)
        billable = tenant.billable(pushed)
        qbo_emails = sorted([e for c, e in tenant.contacts if c in billable] + [e for _, e in tenant.customers])
        for side, emails, have in (
                ("CRM", crm_emails, sorted((c.get("email") or "") for c in contacts)),
                ("QuickBooks", qbo_emails, sorted(str((c.get("PrimaryEmailAddr") or {}).get("Address") or "") for c in customers))):
            if have != emails:
                report.field_differences.append(f"{tenant.location}: {side} e-mails differ from the ones created "
                                                f"(missing {sorted(set(emails) - set(have))[:5]}, extra {sorted(set(have) - set(emails))[:5]})")
        phones = {str(c["Id"]): str((c.get("PrimaryPhone") or {}).get("FreeFormNumber") or "") for c in customers}
        for contact in contacts:
            qbo_id = contact_links.get((tenant.location, contact["id"]))
            if qbo_id is not None and phones.get(str(qbo_id), contact["phone"]) != contact["phone"]:
                report.field_differences.append(f"{tenant.location}: contact {contact['id']} phone {contact['phone']!r} "
                                                f"but QuickBooks {qbo_id} has {phones.get(str(qbo_id))!r}")
        paid = sum((Decimal(i["amount_paid"]) for i in crm_invoices), Decimal(0))
        report.counts[tenant.location] = {**actual, "expected": expected, "crm_amount_paid": str(paid)}


def _check_xero(st: Stack, workload: Workload, tenant: Tenant, report: Report) -> None:
    expected = xero_expected(tenant, workload.pushed(tenant), workload.in_qbo(tenant))
    actual, differences, books = check_xero_tenant(st, tenant, workload.crm[tenant.location], workload.xero[tenant.location])
    (st.workdir / f"xero-{tenant.location}.json").write_text(json.dumps(books, default=str, indent=1))
    for name, want in expected.items():
        report.duplicates += max(0, actual[name] - want)
        report.lost += max(0, want - actual[name])
    report.field_differences += differences
    report.counts[tenant.location] = {**actual, "expected": expected, "provider": XERO}


# -- running --------------------------------------------------------------------------------------
def run(options: Options) -> Report:
    say = (lambda _msg: None) if options.quiet else (lambda msg: print(msg, flush=True))
    rng = random.Random(options.seed)
    report = Report()
    with stack(workers=options.workers, schedulers=options.schedulers, database_url=options.database_url,
               keep=options.keep, workdir=options.workdir) as st:
        report.workdir = str(st.workdir)
        tenants = []
        for index in range(options.tenants):
            location, key, realm = st.new_tenant(f"Soak {index + 1}", import_invoices=True)
            tenants.append(Tenant(location, key, realm))
        for index in range(options.xero_tenants):
            location, key, org = st.new_xero_tenant(f"Soak Xero {index + 1}")
            tenants.append(Tenant(location, key, org, provider=XERO, weight=XERO_WEIGHT))
        say(f"soak: {len(st.procs)} processes up ({', '.join(sorted(st.procs))}), {len(tenants)} tenants "
            f"({options.xero_tenants} on Xero), "
            f"{options.seconds:g}s, seed {options.seed}, workdir {st.workdir}")
        workload = Workload(st, tenants, rng, disconnect_weight=options.disconnect_weight)
        faults = Faults(st, [t.realm for t in tenants if t.provider != XERO], rng, options.kinds,
                        orgs=[t.realm for t in tenants if t.provider == XERO])
        started = time.monotonic()
        next_fault = started + rng.expovariate(1 / options.fault_every)
        last_note = started
        def running() -> bool:
            elapsed = time.monotonic() - started
            short = (sum(workload.ops.values()) < options.min_operations
                     or sum(faults.counts.values()) < options.min_faults)
            return elapsed < options.seconds or (short and elapsed < 3 * options.seconds)

        while running():
            faults.tick()
            if options.kinds and time.monotonic() >= next_fault:
                faults.inject()
                next_fault = time.monotonic() + rng.expovariate(1 / options.fault_every)
            workload.step(crm_up=faults.crm_up, qbo_up=faults.qbo_up)
            if time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                say(f"  {last_note - started:.0f}s: {sum(workload.ops.values())} operations, "
                    f"{sum(faults.counts.values())} faults")
            time.sleep(options.op_pause)
        report.seconds = time.monotonic() - started
        say(f"  workload done: {sum(workload.ops.values())} operations; settling …")
        settle_started = time.monotonic()
        report.settled = settle(st, faults, workload, options.settle_timeout, say, report)
        report.settle_seconds = time.monotonic() - settle_started
        report.operations, report.unavailable = workload.ops, workload.skipped
        report.connection_changes = workload.connection_changes
        report.faults, report.crash_restarts = faults.counts, faults.restarts
        check(st, workload, report)
        report.ok = not report.problems()
        if not report.ok:
            for tenant, output in report.reconcile_output.items():
                if report.reconcile.get(tenant):
                    say(f"--- crm-qbo reconcile {tenant}\n{output}")
        say(report.summary())
    return report


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.soak", description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long the workload runs (default 1)")
    length.add_argument("--seconds", type=float, help="the same in seconds")
    parser.add_argument("--tenants", type=int, default=2, help="QuickBooks tenants")
    parser.add_argument("--xero-tenants", type=int, default=1, help="Xero tenants (beside the QuickBooks ones)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; printed)")
    parser.add_argument("--fault-every", type=float, default=4.0, help="mean seconds between faults")
    parser.add_argument("--faults", default="all", help=f"comma-separated kinds, 'all' or 'none' ({', '.join(ALL_KINDS)})")
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("--disconnect-weight", type=float, default=0.15,
                        help="weight of disconnect/reconnect among ~31 of the workload's other operations")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, SQLite file)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    kinds = ALL_KINDS if args.faults == "all" else () if args.faults == "none" else tuple(args.faults.split(","))
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    seconds = args.seconds if args.seconds is not None else 60.0 * (args.minutes if args.minutes is not None else 1.0)
    return Options(seconds=seconds, tenants=args.tenants, xero_tenants=args.xero_tenants, workers=args.workers, schedulers=args.schedulers,
                   seed=args.seed if args.seed is not None else int(time.time()), fault_every=args.fault_every,
                   kinds=kinds, settle_timeout=args.settle_timeout, keep=args.keep, workdir=args.workdir,
                   disconnect_weight=args.disconnect_weight)


def main(argv: list[str] | None = None) -> int:
    report = run(parse(argv))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
