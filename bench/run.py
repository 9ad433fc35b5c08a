"""`make bench`: the plugin's benchmarks against qbo_sandbox, with the peers, in three modes.

Modes: `zero` (no added latency, no throttles), `realistic` (150 ms a call, no throttles),
`throttled` (QBO's 500/min, 10 in flight, 40 batches/min, on a sandbox clock sped up --clock-speed
times). Workloads: W1 import on connect, W2 incremental poll, W3 webhook burst, W4 push through
the outbox, W5 twenty tenants at once, W6 many tenants on 1, 2 and 4 worker processes (PostgreSQL
only; see each bench/w*.py). Every mode runs on each database of
`--databases` (SQLite and PostgreSQL by default, a fresh database per mode). Writes
bench/results/latest.json and bench/RESULTS.md; `--quick` (every workload small, both databases,
peers included, a few minutes) writes bench/results/quick.json and bench/RESULTS-quick.md instead.
Timings are reported, never asserted.

    python -m bench.run [--quick] [--scale 1] [--modes zero,realistic,throttled] [--workloads W1,...]
                        [--databases sqlite,postgresql] [--big]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench import (
    floors,
    peers,
    txn_per_invoice,
    w1_import,
    w2_poll,
    w3_webhooks,
    w4_push,
    w5_tenants,
    w6_scale,
    xero_workloads,
)
from bench.databases import ALL_DATABASES, LABELS, POSTGRESQL, PostgresServer, database_url
from bench.infra import ROOT, Sandbox, Stack, connect, new_location, stack
from bench.measure import purge_echoes, scalar
from bench.report import write_report

RESULTS_DIR = ROOT / "bench" / "results"
ALL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "XI", "XP", "XW")
XERO_WORKLOADS = ("XI", "XP", "XW")
# XP on Xero's own clock: 64 arrays of invoices and 7 of contacts, past the first minute's 60 calls
# (so the limits bind); not in --quick, as it lasts more than a Xero minute by design.
XERO_AT_LIMITS = 3_200


@dataclass(frozen=True)
class Mode:
    name: str
    latency_ms: float
    clock_speed: float
    throttled: bool
    workloads: tuple[str, ...]


@dataclass(frozen=True)
class Sizes:
    customers: int
    invoices: int
    changes: int
    notices: int
    burst_seconds: float
    push: int
    push_throttled: int
    push_workers: int
    tenants: int
    tenant_records: int
    tenant_push: int
    save_cap_realistic: int
    w6_tenants: int
    w6_records: int
    w6_push: int
    w6_workers: tuple[int, ...]
    w6_notices: int
    xero_push: int
    xero_notices: int
    xero_import: int
    xero_at_limits: int


def sizes_for(scale: float, big: bool, push: int | None = None, quick: bool = False) -> Sizes:
    """The issue's sizes times `scale`. W4 pushes the issue's 10,000 invoices at QBO's limits (the
    throttled mode, where the floor is QBO's batch budget) and 1,000 in the other modes, where the
    peers' one-request-per-invoice runs would otherwise dominate the run; `--push N` sets both.
    --quick runs W6 with 1 and 2 workers (the per-worker scaling), not 4: on a 2-core machine 4 is
    CPU-bound anyway, and the three runs were the largest part of a quick run."""
    def n(base: int, least: int = 10) -> int:
        return max(least, int(round(base * scale)))

    records = 100_000 if big else 10_000
    return Sizes(customers=n(records), invoices=n(records), changes=n(100, 20), notices=n(2000, 10),
                 burst_seconds=max(2.0, 60.0 * scale), push=push or n(1_000), push_throttled=push or n(10_000),
                 push_workers=4, tenants=20, tenant_records=n(250, 5), tenant_push=n(50, 10),
                 save_cap_realistic=n(300, 10), w6_tenants=n(200), w6_records=n(500),
                 w6_push=n(100), w6_workers=(1, 2) if quick else (1, 2, 4), w6_notices=n(50, 5),
                 xero_push=n(1_000), xero_notices=n(500), xero_import=n(5_000),
                 xero_at_limits=0 if quick else n(XERO_AT_LIMITS))


def modes_for(names: list[str], speed: float, big: bool, quick: bool = False) -> list[Mode]:
    """The chosen modes and their workloads. W6 (many tenants, QBO's limits) runs throttled only;
    --quick runs W5 throttled only too (its twenty tenants once), to stay within a few minutes."""
    table = {
        "zero": Mode("zero", 0.0, 1.0, False, ("W1", "W2", "W3", "W4") if quick else ("W1", "W2", "W3", "W4", "W5")),
        "realistic": Mode("realistic", 150.0, 1.0, False, ("W1", "W2", "W4")),
        "throttled": Mode("throttled", 0.0, speed, True, ("W1", "W4", "W5", "W6")),
    }
    chosen = [table[name] for name in names]
    if big:  # the 100k import is about memory: one mode, W1 only
        chosen = [Mode(m.name, m.latency_ms, m.clock_speed, m.throttled, ("W1",)) for m in chosen[:1]]
    return chosen


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# -- measured service times for the floors ---------------------------------------------------------------
def probe(sandbox: Sandbox, page_realm: str, write_realm: str) -> dict[str, float]:
    """Median time of a 1000-row page and of a 30-create batch, as the floors' L (seconds)."""
    from bench.sandbox_rest import Rest

    reader = Rest(sandbox, page_realm)
    page_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        reader.query("SELECT * FROM Customer STARTPOSITION 1 MAXRESULTS 1000")
        page_times.append(time.perf_counter() - t0)
    writer = Rest(sandbox, write_realm)
    customer = writer.batch([{"operation": "create", "Customer": {"DisplayName": "Probe customer"}}])[0]["Customer"]
    batch_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        writer.batch([{"operation": "create", "Invoice": {"CustomerRef": {"value": customer["Id"]}, "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": 10, "SalesItemLineDetail": {
                "ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 10}}]}} for _ in range(30)])
        batch_times.append(time.perf_counter() - t0)
    sandbox.stats(reset=True)
    return {"page_s": round(statistics.median(page_times), 4), "batch_s": round(statistics.median(batch_times), 4)}


def company_specs(mode: Mode, sizes: Sizes) -> list[dict[str, Any]]:
    limits = {"enabled": True} if mode.throttled else {"enabled": False}
    specs: list[dict[str, Any]] = []
    if "W1" in mode.workloads:
        specs.append({"name": "W1 import", "customers": sizes.customers, "invoices": sizes.invoices, "limits": limits})
        # the same records again for the fair peer: a realm holds one connection
        specs.append({"name": "W1 fair peer", "customers": sizes.customers, "invoices": sizes.invoices,
                      "limits": limits})
    specs.append({"name": "probe", "limits": {"enabled": False}})
    if "W4" in mode.workloads:
        for name in ("W4 plugin", "W4 pq save", "W4 pq batch"):
            specs.append({"name": name, "limits": limits})
    if "W5" in mode.workloads:
        for n in range(sizes.tenants):
            specs.append({"name": f"W5 tenant {n:02d}", "customers": sizes.tenant_records,
                          "invoices": sizes.tenant_records, "limits": limits})
    if "W6" in mode.workloads:
        for workers in sizes.w6_workers:
            for n in range(sizes.w6_tenants):
                specs.append({"name": f"W6 {workers}w tenant {n:03d}", "customers": sizes.w6_records,
                              "invoices": sizes.w6_records, "limits": limits})
    return specs


def run_mode(st: Stack, mode: Mode, sizes: Sizes, workloads: set[str], with_peers: bool, big: bool) -> dict[str, Any]:
    wanted = [w for w in mode.workloads if w in workloads]
    if not st.database_url.startswith("postgresql"):
        wanted = [w for w in wanted if w != "W6"]  # many tenants: the production database only
    specs = company_specs(Mode(mode.name, mode.latency_ms, mode.clock_speed, mode.throttled, tuple(wanted)), sizes)
    log(f"mode {mode.name}: starting the sandbox ({len(specs)} companies) …")
    sandbox = st.start_sandbox(specs, latency_ms=mode.latency_ms, clock_speed=mode.clock_speed)
    realms = iter(sandbox.realms)
    w1_realm = next(realms) if "W1" in wanted else ""
    fair_realm = next(realms) if "W1" in wanted else ""
    probe_realm = next(realms)
    w4_realms = [next(realms) for _ in range(3)] if "W4" in wanted else []
    w5_realms = [next(realms) for _ in range(sizes.tenants)] if "W5" in wanted else []
    w6_realms = [[next(realms) for _ in range(sizes.w6_tenants)] for _ in sizes.w6_workers] if "W6" in wanted else []
    service = probe(sandbox, w1_realm or probe_realm, probe_realm)
    out: dict[str, Any] = {"latency_ms": mode.latency_ms, "clock_speed": mode.clock_speed, "throttled": mode.throttled,
                           "seed_s": sandbox.seed_seconds, "service": service, "workloads": {}}
    page_s = service["page_s"]
    batch_s = service["batch_s"]
    tenant = ""
    if "W1" in wanted:
        log(f"mode {mode.name}: W1 import of {sizes.customers} + {sizes.invoices} …")
        drain = mode.name == "zero" and not big
        ours = w1_import.run(st, w1_realm, sizes.customers, sizes.invoices, echo_drain=drain)
        tenant = ours["tenant"]
        purge_echoes(st)
        entry: dict[str, Any] = {"floor": floors.import_floor(sizes.customers, sizes.invoices, page_s, mode.throttled,
                                                               mode.clock_speed), "plugin": ours}
        if with_peers:
            log(f"mode {mode.name}: W1 peers …")
            sandbox.stats(reset=True)
            entry[FAIR_PEER] = fair_peer(st, fair_realm, sizes.customers, sizes.invoices)
            entry["python-quickbooks"] = {**peers.pq_import(sandbox, w1_realm),
                                          **_calls(sandbox, w1_realm)}
            entry["tap-quickbooks"] = {**peers.tap_import(sandbox, w1_realm, st.workdir), **_calls(sandbox, w1_realm)}
        out["workloads"]["W1"] = entry
    if "W2" in wanted and tenant:
        log(f"mode {mode.name}: W2 poll with {sizes.changes} changes …")
        out["workloads"]["W2"] = {"floor": floors.poll_floor(sizes.changes),
                                  "plugin": w2_poll.run(st, tenant, w1_realm, sizes.changes)}
        purge_echoes(st)
    if "W3" in wanted and tenant:
        log(f"mode {mode.name}: W3 burst of {sizes.notices} webhook notices in {sizes.burst_seconds:.0f} s …")
        out["workloads"]["W3"] = {"floor": floors.webhook_floor(sizes.notices), "plugin": w3_webhooks.run(
            st, tenant, w1_realm, min(sizes.notices, sizes.customers - sizes.changes), sizes.burst_seconds,
            skip_first=sizes.changes)}
        purge_echoes(st)
    if "W4" in wanted:
        push = sizes.push_throttled if mode.throttled else sizes.push
        log(f"mode {mode.name}: W4 push of {push} invoices …")
        customers = math.ceil(push / 10)
        warmup = 60.0 / mode.clock_speed
        entry = {"floor": floors.push_floor(push, customers, batch_s, mode.throttled, mode.clock_speed),
                 "plugin": w4_push.run(st, w4_realms[0], push, sizes.push_workers, warmup)}
        purge_echoes(st)
        if with_peers:
            save_count = push if mode.name != "realistic" else min(push, sizes.save_cap_realistic)
            log(f"mode {mode.name}: W4 peers (save {save_count}, batch {push}) …")
            sandbox.stats(reset=True)
            entry["python-quickbooks save()"] = {**peers.pq_push(sandbox, w4_realms[1], "save", save_count, mode.name),
                                                 "invoices": save_count, **_calls(sandbox, w4_realms[1])}
            entry["python-quickbooks batch_create"] = {
                **peers.pq_push(sandbox, w4_realms[2], "batch", push, mode.name), "invoices": push,
                **_calls(sandbox, w4_realms[2])}
        out["workloads"]["W4"] = entry
    if "W5" in wanted:
        log(f"mode {mode.name}: W5 {sizes.tenants} tenants (import {sizes.tenant_records}+{sizes.tenant_records}, "
            f"push {sizes.tenant_push} each) …")
        out["workloads"]["W5"] = {"plugin": w5_tenants.run(st, w5_realms, sizes.tenant_records, sizes.tenant_records,
                                                           sizes.tenant_push, sizes.push_workers)}
        purge_echoes(st)
    if "W6" in wanted:
        log(f"mode {mode.name}: W6 {sizes.w6_tenants} tenants (import {sizes.w6_records}+{sizes.w6_records}, push "
            f"{sizes.w6_push}, {sizes.w6_notices} notices each) with {', '.join(map(str, sizes.w6_workers))} workers …")
        out["workloads"]["W6"] = {"plugin": w6_scale.run(st, w6_realms, sizes.w6_workers, sizes.w6_records,
                                                         sizes.w6_records, sizes.w6_push, sizes.w6_notices)}
    return out


FAIR_PEER = "fair peer (pq + host writes)"


def fair_peer(st: Stack, realm: str, customers: int, invoices: int) -> dict[str, Any]:
    """The fair import peer into a tenant of its own, connected to the same realm (so the host's
    echo events go the same way as the plugin's import's), then its echoes dropped."""
    assert st.sandbox is not None
    tenant = new_location(st, "W1 fair peer")
    connect(st, tenant, realm)
    st.sandbox.stats(reset=True)
    found = {**peers.fair_import(st, realm, tenant), **_calls(st.sandbox, realm)}
    contacts = int(scalar(st, "SELECT COUNT(*) FROM crm_contact WHERE location_id = :t", t=tenant))
    bills = int(scalar(st, "SELECT COUNT(*) FROM crm_invoice WHERE location_id = :t", t=tenant))
    found["correct"] = {"ok": contacts == customers and bills == invoices, "crm_contacts": contacts,
                        "crm_invoices": bills}
    purge_echoes(st)
    return found


def _calls(sandbox: Sandbox, realm: str) -> dict[str, Any]:
    stats = sandbox.stats(reset=True)
    return {"calls": int(stats.get("by_realm", {}).get(realm, 0)) - int(stats.get("throttled", 0)),
            "throttled_429": int(stats.get("throttled", 0)), "by_endpoint": stats.get("by_endpoint", {})}


# -- environment ---------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    load = os.getloadavg()
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1048576, 1),
            "load_at_start": [round(x, 2) for x in load]}


def versions(peer_versions: dict[str, str], server: PostgresServer | None = None) -> dict[str, Any]:
    from importlib.metadata import version

    found = {"python": platform.python_version()}
    for name in ("crm-qbo-plugin", "flask", "sqlalchemy", "rq", "redis", "waitress", "requests"):
        try:
            found[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing distribution is reported as such
            found[name] = "missing"
    import sqlite3

    found["sqlite"] = sqlite3.sqlite_version
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout  # noqa: S607
    found["redis-server"] = redis_version.split("v=")[1].split()[0] if "v=" in redis_version else redis_version.strip()
    if server is not None:
        found["postgresql"] = server.version()
    found.update({f"peer:{k}": v for k, v in peer_versions.items()})
    for name in ("xero-python", "pyxero"):  # the Xero peers run in the project's own venv
        try:
            found[f"peer:{name}"] = version(name)
        except Exception:  # noqa: BLE001 - a missing distribution is reported as such
            found[f"peer:{name}"] = "missing"
    return found


def sandbox_speed(seconds: int = 3) -> dict[str, Any]:
    """bench/sandbox_speed.py's figures (reads/s, the 1000-customer page), as it prints them."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "sandbox_speed.py"), "--seconds", str(seconds)],  # noqa: S603
                          capture_output=True, text=True, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=300, check=False)
    return {"lines": done.stdout.strip().splitlines(), "ok": done.returncode == 0}


def save(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    tmp.replace(out)


def repo_relative(args: dict[str, Any]) -> dict[str, Any]:
    """The run's arguments with paths inside the repository named from its root (results name no machine's paths)."""
    def rel(value: Any) -> Any:
        if isinstance(value, str) and Path(value).is_absolute() and Path(value).resolve().is_relative_to(ROOT):
            return str(Path(value).resolve().relative_to(ROOT))
        return value
    return {key: rel(value) for key, value in args.items()}


QUICK_SCALE = 0.02  # --quick: every workload at 2% of the issue's sizes (floors of 10 apply)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="crm-qbo-plugin benchmarks")
    parser.add_argument("--quick", action="store_true",
                        help=f"a small run (scale {QUICK_SCALE}, no memory pass) for a few minutes; writes "
                             "bench/results/quick.json and bench/RESULTS-quick.md unless --out/--report are given")
    parser.add_argument("--scale", type=float, default=None, help="multiply every size (0.05 for a smoke run)")
    parser.add_argument("--big", action="store_true", help="W1 with 100,000 customers + 100,000 invoices (memory)")
    parser.add_argument("--modes", default="zero,realistic,throttled")
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    parser.add_argument("--databases", default=",".join(ALL_DATABASES), help="sqlite, postgresql or both")
    parser.add_argument("--clock-speed", type=float, default=10.0, help="sandbox clock speed in the throttled mode")
    parser.add_argument("--push", type=int, default=None, help="W4 invoices in every mode (default 1,000 × scale)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-big", action="store_true", help="skip the 100,000 + 100,000 memory import")
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/latest.json)")
    parser.add_argument("--report", default=None, help="the report (default bench/RESULTS.md)")
    args = parser.parse_args(argv)
    if args.scale is None:
        args.scale = QUICK_SCALE if args.quick else 1.0
    if args.quick:
        args.no_big = True
    if args.out is None:
        args.out = str(RESULTS_DIR / ("quick.json" if args.quick else "latest.json"))
    if args.report is None:
        args.report = str(ROOT / "bench" / ("RESULTS-quick.md" if args.quick else "RESULTS.md"))
    databases = [d.strip().lower() for d in args.databases.split(",") if d.strip()]
    unknown = [d for d in databases if d not in ALL_DATABASES]
    if unknown or not databases:
        parser.error(f"--databases: choose from {', '.join(ALL_DATABASES)} (got {args.databases!r})")
    sizes = sizes_for(args.scale, args.big, args.push, args.quick)
    modes = modes_for([m.strip() for m in args.modes.split(",") if m.strip()], args.clock_speed, args.big, args.quick)
    workloads = {w.strip().upper() for w in args.workloads.split(",") if w.strip()}
    with_peers = not args.no_peers
    started = time.perf_counter()
    peer_versions = peers.ensure_venvs(log) if with_peers else {}
    server = PostgresServer() if POSTGRESQL in databases else None
    try:
        results: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
            "versions": versions(peer_versions, server), "args": repo_relative(vars(args)), "sizes": sizes.__dict__,
            "sandbox_speed": sandbox_speed(1 if args.quick else 3), "databases": {},
        }
        log("sandbox speed: " + " | ".join(results["sandbox_speed"]["lines"]))
        results["first_invoice"] = txn_per_invoice.measure()
        log(f"first invoice: {results['first_invoice']['transactions']} transactions, "
            f"{results['first_invoice']['qbo_calls']} QBO calls")
        for db in databases:
            results["databases"][db] = run_database(db, server, modes, sizes, workloads, with_peers, args)
            save(results, Path(args.out).with_suffix(".partial.json"))  # a later failure keeps what was measured
    finally:
        if server is not None:
            server.close()
    results["total_wall_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    save(results, out)
    write_report(results, Path(args.report))
    log(f"done in {results['total_wall_s']:.0f} s: {out} and {args.report}")
    return 0


def run_database(db: str, server: PostgresServer | None, modes: list[Mode], sizes: Sizes, workloads: set[str],
                 with_peers: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Every chosen mode on one database (a fresh one per mode), the Xero pass, then the memory pass.
    --quick runs each workload once, to stay within three minutes: W1–W5 and the Xero pass on the
    first database (SQLite), W6 (many tenants: PostgreSQL's case) on PostgreSQL."""
    found: dict[str, Any] = {"modes": {}}
    if args.quick:
        workloads = workloads - {"W6"} if db == ALL_DATABASES[0] else workloads & {"W6"}
    for mode in modes:
        if not workloads & set(mode.workloads):
            continue
        log(f"database {LABELS[db]}, mode {mode.name} …")
        with database_url(db, server) as url, stack(database_url=url) as st:
            mode_started = time.perf_counter()
            found["modes"][mode.name] = run_mode(st, mode, sizes, workloads, with_peers, args.big)
            found["modes"][mode.name]["mode_wall_s"] = round(time.perf_counter() - mode_started, 1)
    if not args.big and workloads & set(XERO_WORKLOADS):
        log(f"database {LABELS[db]}, Xero …")
        with database_url(db, server) as url, stack(database_url=url) as st:
            started = time.perf_counter()
            found["xero"] = xero_workloads.run_all(st, sizes.xero_push, sizes.xero_notices, sizes.burst_seconds,
                                                   sizes.push_workers, args.clock_speed, with_peers, log,
                                                   imports=sizes.xero_import if "XI" in workloads else 0,
                                                   at_limits=sizes.xero_at_limits if "XP" in workloads else 0)
            found["xero"]["wall_s"] = round(time.perf_counter() - started, 1)
    if not args.big and not args.no_big and "W1" in workloads:
        # W1's memory figure: the 100,000 + 100,000 import (× scale), one mode, no peers.
        big_sizes = sizes_for(args.scale, True, args.push)
        [big_mode] = modes_for(["zero"], args.clock_speed, True)
        with database_url(db, server) as url, stack(database_url=url) as st:
            mode_started = time.perf_counter()
            found["memory"] = run_mode(st, big_mode, big_sizes, {"W1"}, False, True)
            found["memory"]["mode_wall_s"] = round(time.perf_counter() - mode_started, 1)
    return found


if __name__ == "__main__":
    try:
        sys.exit(main())
    except requests.RequestException as exc:
        print(f"bench: a sandbox call failed: {exc}", file=sys.stderr)
        sys.exit(1)
