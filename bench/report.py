"""bench/RESULTS.md from the results JSON: machine, versions, date, a table per workload, and the
issue's targets with what was measured next to each (reported, never asserted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import xero_report
from bench.report_tables import f as _f
from bench.report_tables import ms_per as _ms_per_record
from bench.report_tables import ok as _ok
from bench.report_tables import ratio as _ratio
from bench.report_tables import table as _table

FAIR_PEER = "fair peer (pq + host writes)"


def _w1(modes: dict[str, Any]) -> list[str]:
    rows = []
    for mode, data in modes.items():
        entry = data["workloads"].get("W1")
        if not entry:
            continue
        floor = entry["floor"]
        for tool in ("plugin", FAIR_PEER, "python-quickbooks", "tap-quickbooks"):
            run = entry.get(tool)
            if not run:
                continue
            records = run.get("records") or entry["plugin"].get("records")
            ok = _ok(run) if "correct" in run or tool == "plugin" else (
                "yes" if run.get("distinct") and sum(run["distinct"].values()) == entry["plugin"]["records"] else
                _ok(run) if run.get("error") else "**NO**")
            rows.append([mode, tool, _f(records), _f(run.get("wall_s"), 3), _f(floor["wall_s"], 3),
                         _ratio(run.get("wall_s"), floor["wall_s"]), _f(run.get("calls")), f"{floor['calls']}",
                         _ms_per_record(run.get("cpu_s"), records), _f(run.get("peak_rss_mb"), 1),
                         _f(run.get("throttled_429")), ok])
    lines = _table(["mode", "tool", "records", "wall s", "floor s", "vs floor", "API calls", "floor calls",
                    "CPU ms/record", "peak RSS MB", "429s", "all once"], rows)
    for mode, data in modes.items():
        echo = (data["workloads"].get("W1") or {}).get("plugin", {}).get("echo_drain")
        if echo:
            lines.append("")
            lines.append(f"Echo drain ({mode}): the reference CRM publishes each imported record back as an "
                         f"origin-QBO event; the plugin stored and skipped {echo['events']} outbox rows in "
                         f"{_f(echo['wall_s'], 1)} s, {_ms_per_record(echo['cpu_s'], echo['events'])} ms CPU each.")
    return lines


def _w2(modes: dict[str, Any]) -> list[str]:
    rows = []
    for mode, data in modes.items():
        entry = data["workloads"].get("W2")
        if not entry:
            continue
        run = entry["plugin"]
        first = run.get("first_poll") or {}
        rows.append([mode, _f(run["changes"]), _f(run["wall_s"], 3), _f(run.get("calls")), str(entry["floor"]["calls"]),
                     _ms_per_record(run.get("cpu_s"), run["changes"]), _f(first.get("cpu_s"), 3),
                     _f(run.get("peak_rss_mb"), 1), _f(run.get("throttled_429")), _ok(run)])
    return [*_table(["mode", "changes", "wall s", "API calls", "floor calls", "CPU ms/change",
                     "first (empty) poll CPU s", "peak RSS MB", "429s", "all applied once"], rows),
            "", "The measured poll is the worker's second: its first, which finds nothing, pays the worker's one-off "
                "costs (importing the job modules, compiling each statement once); its CPU is shown apart."]


def _w3(modes: dict[str, Any]) -> list[str]:
    rows = []
    for mode, data in modes.items():
        entry = data["workloads"].get("W3")
        if not entry:
            continue
        run = entry["plugin"]
        rows.append([mode, _f(run["notices"]), _f(run["burst_seconds"], 0), _f(run["ack_p50_ms"]), _f(run["ack_p99_ms"]),
                     _f(run["ack_max_ms"]), _f(run["consistent_after_s"], 2), _f(run.get("calls")),
                     f"{entry['floor']['calls']} (or {entry['floor']['calls_one_read_each']} one read each)",
                     _ms_per_record(run["web"]["cpu_s"], run["notices"]), _ms_per_record(run["workers"]["cpu_s"], run["notices"]),
                     _f(run.get("peak_rss_mb"), 1), _ok(run)])
    return _table(["mode", "notices", "over s", "ack p50 ms", "ack p99 ms", "ack max ms", "all applied after s",
                   "API calls", "floor calls", "web CPU ms/notice", "worker CPU ms/notice", "peak RSS MB",
                   "each applied once"], rows)


def _w4(modes: dict[str, Any]) -> list[str]:
    rows = []
    for mode, data in modes.items():
        entry = data["workloads"].get("W4")
        if not entry:
            continue
        floor = entry["floor"]
        for tool, run in entry.items():
            if tool == "floor" or not isinstance(run, dict):
                continue
            invoices = run.get("invoices")
            records = invoices + (invoices + 9) // 10 if isinstance(invoices, int) else None
            created = run.get("created")
            done = (f"{created.get('Invoice', 0)}/{invoices} invoices" if isinstance(created, dict) else _ok(run))
            if isinstance(created, dict) and run.get("error"):
                done += f"; stopped: {str(run['error'])[:70]}"
            throughput = (floor["wall_s"] / run["wall_s"] * 100.0
                          if tool == "plugin" and run.get("wall_s") and invoices == entry["plugin"]["invoices"] else None)
            rows.append([mode, tool, _f(invoices), _f(run.get("wall_s"), 2),
                         _f(floor["wall_s"], 2) if tool == "plugin" else "–",
                         f"{throughput:.0f}%" if throughput is not None else "–",
                         _f(run.get("calls")), str(floor["calls"]) if tool == "plugin" else "–",
                         _ms_per_record(run.get("cpu_s"), records), _f(run.get("peak_rss_mb"), 1),
                         _f(run.get("throttled_429")), _f(run.get("throttled_after_warmup")), done])
    return _table(["mode", "tool", "invoices", "wall s", "batched floor s", "throughput vs floor", "API calls",
                   "floor calls", "CPU ms/record", "peak RSS MB", "429s", "429s after warm-up", "correct"], rows)


def _w5(modes: dict[str, Any]) -> list[str]:
    rows = []
    for mode, data in modes.items():
        entry = data["workloads"].get("W5")
        if not entry:
            continue
        run = entry["plugin"]
        per = run["per_tenant"]
        rows.append([mode, _f(run["tenants"]), f"{per['import_customers']}+{per['import_invoices']} / {per['push_invoices']}",
                     _f(run["records"]), _f(run["wall_s"], 2), _f(run["slowest_import_s"], 2), _f(run.get("calls")),
                     _ms_per_record(run.get("cpu_s"), run["records"]), _f(run.get("peak_rss_mb"), 1),
                     _f(run.get("throttled_429")), _f(run.get("max_in_flight_any_realm")),
                     f"{run['correct']['tenants_ok']}/{run['tenants']}"])
    return _table(["mode", "tenants", "per tenant import / push", "records", "wall s", "slowest import s", "API calls",
                   "CPU ms/record", "peak RSS MB", "429s", "max in flight (a realm)", "tenants correct"], rows)


def _targets(modes: dict[str, Any]) -> list[str]:
    lines = []
    realistic = modes.get("realistic", {}).get("workloads", {}).get("W1")
    any_w1 = realistic or next((m["workloads"]["W1"] for m in modes.values() if "W1" in m["workloads"]), None)
    if any_w1:
        plugin, floor = any_w1["plugin"], any_w1["floor"]
        over = (plugin["calls"] / floor["calls"] - 1.0) * 100.0 if floor["calls"] else 0.0
        lines.append(f"- Import API calls within 5% of the floor: {plugin['calls']} calls vs floor {floor['calls']} "
                     f"({over:+.0f}%; strict floor without terminator/COUNT {floor['strict_calls']}).")
    if realistic:
        plugin, floor = realistic["plugin"], realistic["floor"]
        lines.append(f"- Import wall within 1.5× of the floor under realistic latency: {plugin['wall_s']:.2f} s vs "
                     f"{floor['wall_s']:.2f} s ({_ratio(plugin['wall_s'], floor['wall_s'])}).")
        fastest = min((r["wall_s"] for k, r in realistic.items() if k not in ("plugin", "floor") and r.get("wall_s")),
                      default=None)
        if fastest:
            lines.append(f"- At least twice as fast as the fastest peer (realistic): plugin {plugin['wall_s']:.2f} s, "
                         f"fastest peer {fastest:.2f} s (the plugin runs at {fastest / plugin['wall_s']:.2f}× the peer's speed).")
    for mode, data in modes.items():
        w1 = data["workloads"].get("W1") or {}
        fair = w1.get(FAIR_PEER)
        if fair and fair.get("wall_s") and w1["plugin"].get("wall_s"):
            plugin = w1["plugin"]
            lines.append(f"- Import ≥ 1.5× faster than the fair peer ({mode}; issue #20): plugin {plugin['wall_s']:.2f} s "
                         f"and {_ms_per_record(plugin.get('cpu_s'), plugin['records'])} ms CPU/record over "
                         f"{plugin.get('calls')} API calls; fair peer {fair['wall_s']:.2f} s and "
                         f"{_ms_per_record(fair.get('cpu_s'), fair.get('records'))} ms CPU/record over {fair.get('calls')} "
                         f"calls: the plugin is {fair['wall_s'] / plugin['wall_s']:.2f}× the fair peer's speed.")
    if realistic:
        lines.append(f"- Import wall ≤ 3× the floor under realistic latency (issue #20): "
                     f"{_ratio(realistic['plugin']['wall_s'], realistic['floor']['wall_s'])}.")
    throttled = modes.get("throttled", {}).get("workloads", {}).get("W4")
    if throttled:
        plugin, floor = throttled["plugin"], throttled["floor"]
        lines.append(f"- Push at QBO's limits ≥ 90% of the batched floor's throughput, zero 429s after warm-up: "
                     f"{floor['wall_s'] / plugin['wall_s'] * 100.0:.0f}% of the floor, {plugin['throttled_429']} 429s "
                     f"({plugin['throttled_after_warmup']} after warm-up).")
    for mode, data in modes.items():
        w3 = data["workloads"].get("W3")
        if w3:
            run = w3["plugin"]
            lines.append(f"- Webhook ack p99 < 50 ms, each notice applied once ({mode}): p99 {run['ack_p99_ms']:.1f} ms, "
                         f"applied once: {'yes' if run['correct']['ok'] else 'NO'}.")
    cpu = []
    for mode, data in modes.items():
        w1 = data["workloads"].get("W1")
        if w1:
            cpu.append(f"{mode} {_ms_per_record(w1['plugin']['cpu_s'], w1['plugin']['records'])}")
    if cpu:
        lines.append(f"- Plugin CPU < 0.5 ms a record (W1 import, ms/record): {', '.join(cpu)}.")
    return lines


def _w6(modes: dict[str, Any]) -> list[str]:
    rows = []
    lines: list[str] = []
    for mode, data in modes.items():
        entry = data["workloads"].get("W6")
        if not entry:
            continue
        per = entry["plugin"]["per_tenant"]
        for run in entry["plugin"]["runs"]:
            phase, hooks = run["import_push"], run["webhooks"]
            rows.append([mode, f"{run['workers']} + {run['web_processes']} web", _f(run["tenants"]),
                         f"{per['import_customers']}+{per['import_invoices']} / {per['push_invoices']} / "
                         f"{per['webhook_notices']}",
                         _f(phase["wall_s"], 2), _f(run["import_push_records_per_s"], 1), _f(run["invoices_per_s"], 1),
                         _f(run["latency_p50_s"], 2), _f(run["latency_p99_s"], 2),
                         f"{_f(hooks['wall_s'], 2)} ({hooks['notices']} over {_f(hooks['burst_s'], 0)} s)",
                         _f(hooks["ack_p99_ms"], 1), _f(run["throttled_429"]),
                         f"{_f(run['slowest_tenant_s'], 2)} / {_f(run['median_tenant_s'], 2)} = {_f(run['fairness'])}×",
                         _ms_per_record(run["worker_cpu_s"], phase["records"] + hooks["notices"]),
                         _ms_per_record(hooks["web"]["cpu_s"], hooks["notices"]),
                         f"{run['correct']['tenants_ok']}/{run['tenants']}"])
        lines.append(f"Scaling of the import + push phase's throughput from 1 to 2 workers ({mode}): "
                     f"{_f(entry['plugin'].get('scaling_1_to_2'))}× (2.00× would be linear).")
    table = _table(["mode", "workers", "tenants", "per tenant import / push / notices", "import+push wall s",
                    "records/s", "invoices pushed/s", "event→QBO p50 s", "event→QBO p99 s", "webhooks applied after s",
                    "ack p99 ms", "429s", "slowest / median tenant s", "worker CPU ms/unit", "web CPU ms/notice",
                    "tenants correct"], rows)
    return [*table, "", *lines] if rows else table


FAIR_PEER_NOTE = (
    "\"fair peer (pq + host writes)\" is the straightforward integrator (bench/peer_scripts/fair_import.py): "
    "python-quickbooks 0.9.12's STARTPOSITION/MAXRESULTS loop, customers then invoices, 1000 a page, one page at a "
    "time; each page mapped minimally to the host's records and written with the same host bulk methods the plugin's "
    "import calls (`upsert_contacts`, `upsert_invoices`: one transaction per page), QBO id → CRM id kept in memory. "
    "It stores no links and no sync state. It runs as its own process started with the plugin worker's interpreter, "
    "packages and environment (python-quickbooks is in the project's dev extras), building the same host app "
    "(bench.hostapp) on the same database (the mode's fresh one) against the same sandbox in the same latency mode, "
    "into its own tenant connected to its own realm seeded with the very same records (a realm holds one connection), "
    "so the host's echo events go the same way as after the plugin's import. Not in the harness's process: that one "
    "does the setup and checks, so its CPU would mix with the peer's; not in the peers' venv: that one has no host. "
    "Wall: from its first page request to its last write; CPU: its own rusage from the same point (after building "
    "the app, as a worker is measured once started; the whole process's CPU is in the json as process_cpu_s); "
    "API calls: the sandbox's counters for its realm. The other two peers only count records (no writes)."
)
# What stands in the way of the CPU targets still missed, from cProfile of the bench's worker and web
# processes (issue #20); the figures beside it are the run's own.
IN_THE_WAY: list[str] = [
    "", "## What stands in the way of the targets still missed (issue #20)", "",
    "From cProfile of the bench's worker and web processes; the measured figures are the ones above.",
    "",
    "- **Push ≤ 1.5 ms CPU per invoice.** A batch's member no longer costs a job of its own (the leader takes the "
    "members' jobs out of the queue when it claims them; rq's bookkeeping of a no-op job was ~1.7 ms), the members' "
    "invoices and new contacts are read with one host call each and their pending links set with two statements. "
    "What is left per 30-invoice batch: the links and write-ledger rows recorded as ORM objects (60 per batch), the "
    "`/batch` JSON encoded and decoded, the claim, and per new contact its `contact.created` job (one rq job) and "
    "its customer create, which QuickBooks takes one at a time.",
    "- **CDC ≤ 1 ms per change.** A poll has ~50 ms of fixed cost (its rq job, the CDC call, the sync run opened and "
    "closed, the cursor, the realm lock, the drain check) shared by the changes it brings: 20 changes (`--quick`) "
    "pay ~2.5 ms each for it, 100 changes ~0.5 ms. The changes themselves are applied in batches with one bulk host "
    "read and one bulk write per kind.",
    "- **Webhook ≤ 1.5 ms web CPU per notice.** W3 sends one notice per POST, as Intuit does when changes are "
    "sparse: the HTTP server (waitress) costs ~2 ms of a request, storing the delivery ~0.5 ms (one transaction) "
    "and queuing its drain one Redis call. Meeting it needs a lighter server in front or concurrent deliveries "
    "grouped into one commit.",
    "- **Import wall ≤ 3× the floor under realistic latency.** The floor counts only QuickBooks' latency (pages in "
    "flight); at the full 10,000 + 10,000 the import is CPU-bound instead: ~0.33 ms a record on SQLite (0.5 on "
    "PostgreSQL) is ~6.6 s of work against a 0.7 s floor, so the target holds only where latency dominates (the "
    "`--quick` sizes: ~2× on SQLite). What the CPU goes to is below.",
    "- **Push at QBO's limits ≥ 90% of the batched floor on PostgreSQL.** The same pushes cost the workers more CPU "
    "on PostgreSQL, and new contacts' customers are created one at a time within QuickBooks' 500 a minute.",
    "- **Import ≥ 1.5× faster than the fair peer.** The pages now overlap the COUNTs and each other, but the plugin "
    "writes more per record than the peer (its links, write-ledger rows and checkpoints beside the host's rows: "
    "~0.4 against ~0.17 ms CPU a record on SQLite) and applies customers before invoices (an invoice needs its "
    "customer's link), so it wins only where latency dominates.",
]

W6_NOTES: list[str] = [
    "", "## W6 — how to read it", "",
    "- W6 runs on PostgreSQL only (many tenants is the production case), in the throttled mode (QBO's per-realm "
    "limits on, sandbox clock sped up), once per worker count (1, 2, 4 `crm-qbo worker` processes — 1 and 2 with --quick; always 2 "
    "`crm-qbo serve` processes taking the webhooks), each on its own fresh tenants and companies (bench/w6_scale.py).",
    "- Phase import + push: every tenant's pushed invoices are published first and their jobs queued (a backlog), "
    "then every import is queued, then the workers start. \"event→QBO\" is the invoice link's last write minus the "
    "later of the event's occurred_at and the workers' start: for a backlog, the wait each event saw.",
    "- Phase webhooks: K customers per tenant changed in QuickBooks (not timed), one signed notice each sent open-loop "
    "to the two web processes (half each); timed until every notice is applied.",
    "- Fairness: each tenant finishes when its import has finished and its last pushed invoice is written; the slowest "
    "tenant's finish over the median tenant's.",
    "- This machine has 2 cores, shared by the workers, the 2 web processes, PostgreSQL, Redis, the sandbox and the "
    "harness: with 4 workers the run is CPU-bound, so 4 workers cannot show more than the cores allow; the 1 → 2 "
    "figure is the per-worker scaling measured here. Worker CPU per unit = worker CPU / (records + notices). At "
    "`--quick` sizes each phase lasts a second or two, mostly fixed waits (the harness's 1 s sweeper tick, rq's "
    "polling), so the scaling figure means something at full size only.",
]


def _memory(results: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The memory target's line and the big import's table (from `make bench`'s memory pass, or a
    `--big` run's own modes)."""
    if results.get("memory"):
        source = {"zero": results["memory"]}
    elif results["args"].get("big"):
        source = results["modes"]
    else:
        source = {}
    big = {f"{name} (memory)": data for name, data in source.items()}
    target: list[str] = []
    table: list[str] = []
    for mode, data in big.items():
        w1 = data["workloads"].get("W1")
        if w1:
            plugin = w1["plugin"]
            target.append(f"- Peak memory < 300 MB for the 100,000 + 100,000 import ({mode}, {plugin['records']} records): "
                          f"{plugin['peak_rss_mb']:.0f} MB peak RSS, {_ms_per_record(plugin['cpu_s'], plugin['records'])} "
                          f"ms CPU a record, {plugin['wall_s']:.1f} s.")
    if big:
        table = _w1(big)
    return target, table


LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PER_MINUTE = 500  # QBO's requests per realm per minute
BATCHED_PER_MINUTE = 40 * 30  # QBO's 40 batches per minute × 30 creates per batch


def _ms(cpu_s: Any, units: Any) -> float | None:
    if not isinstance(cpu_s, int | float) or not isinstance(units, int | float) or not units:
        return None
    return cpu_s * 1000.0 / units


def _figures(modes: dict[str, Any]) -> dict[str, str]:
    """The headline figures of one database's run, keyed by a row label (same labels for every database)."""
    out: dict[str, str] = {}
    for mode, data in modes.items():
        w = data["workloads"]
        if "W1" in w:
            for tool in ("plugin", FAIR_PEER, "python-quickbooks", "tap-quickbooks"):
                run = w["W1"].get(tool)
                if isinstance(run, dict) and run.get("wall_s") is not None:
                    records = run.get("records") or w["W1"]["plugin"].get("records")
                    out[f"W1 {mode}: {tool} wall s"] = _f(run.get("wall_s"), 3)
                    out[f"W1 {mode}: {tool} CPU ms/record"] = _ms_per_record(run.get("cpu_s"), records)
        if "W2" in w:
            run = w["W2"]["plugin"]
            out[f"W2 {mode}: wall s"] = _f(run.get("wall_s"), 3)
            out[f"W2 {mode}: CPU ms/change"] = _ms_per_record(run.get("cpu_s"), run.get("changes"))
        if "W3" in w:
            run = w["W3"]["plugin"]
            out[f"W3 {mode}: ack p99 ms"] = _f(run.get("ack_p99_ms"))
            out[f"W3 {mode}: all applied after s"] = _f(run.get("consistent_after_s"))
            out[f"W3 {mode}: web CPU ms/notice"] = _ms_per_record(run["web"]["cpu_s"], run.get("notices"))
            out[f"W3 {mode}: worker CPU ms/notice"] = _ms_per_record(run["workers"]["cpu_s"], run.get("notices"))
        if "W4" in w:
            run = w["W4"]["plugin"]
            out[f"W4 {mode}: plugin wall s"] = _f(run.get("wall_s"), 2)
            out[f"W4 {mode}: plugin worker CPU ms/invoice"] = _ms_per_record(run.get("cpu_s"), run.get("invoices"))
            out[f"W4 {mode}: plugin 429s"] = _f(run.get("throttled_429"))
        if "W5" in w:
            run = w["W5"]["plugin"]
            out[f"W5 {mode}: wall s"] = _f(run.get("wall_s"), 2)
            out[f"W5 {mode}: CPU ms/record"] = _ms_per_record(run.get("cpu_s"), run.get("records"))
        if "W6" in w:
            for run in w["W6"]["plugin"]["runs"]:
                label = f"W6 {mode}: {run['workers']} worker(s)"
                out[f"{label} invoices/s"] = _f(run.get("invoices_per_s"), 1)
                out[f"{label} p99 event→QBO s"] = _f(run.get("latency_p99_s"), 2)
                out[f"{label} slowest / median tenant"] = f"{_f(run.get('fairness'))}×"
            out[f"W6 {mode}: scaling 1 → 2 workers (import + push records/s)"] = (
                f"{_f(w['W6']['plugin'].get('scaling_1_to_2'))}×")
    return out


def _side_by_side(databases: dict[str, Any]) -> list[str]:
    figures = {db: _figures(data["modes"]) for db, data in databases.items()}
    labels: list[str] = []
    for found in figures.values():
        labels += [label for label in found if label not in labels]
    rows = [[label, *(figures[db].get(label, "–") for db in databases)] for label in labels]
    return _table(["figure", *(LABELS.get(db, db) for db in databases)], rows)


def _cpu_per_unit(databases: dict[str, Any]) -> list[str]:
    """Step 5 of issue #20: CPU per unit of work, and the realms one core keeps at QBO's push rate."""
    lines = []
    for db, data in databases.items():
        parts = []
        modes = data["modes"]
        pushes = [(m, d["workloads"]["W4"]["plugin"]) for m, d in modes.items() if "W4" in d["workloads"]]
        # QBO's limits on (the throttled mode) is the push a realm sees in production; else the largest
        pushes.sort(key=lambda found: (found[0] != "throttled", -int(found[1].get("invoices") or 0)))
        if pushes:
            mode, run = pushes[0]
            per_invoice = _ms(run.get("cpu_s"), run.get("invoices"))
            if not per_invoice:
                parts.append(f"push: no worker CPU measured (W4 {mode}, {run.get('invoices')} invoices)")
            else:
                realms = 60_000.0 / (PER_MINUTE * per_invoice)
                batched = 60_000.0 / (BATCHED_PER_MINUTE * per_invoice)
                parts.append(f"push {per_invoice:.2f} ms CPU per invoice (W4 {mode}, worker CPU / invoices; target ≤ 1.5) "
                             f"→ realms one core can keep at QuickBooks' full push rate: **{realms:.1f}** "
                             f"(= 60,000 ms / ({PER_MINUTE} invoices/min × {per_invoice:.2f} ms); at the batched "
                             f"ceiling of {BATCHED_PER_MINUTE} invoices/min, 40 batches × 30: {batched:.1f})")
        cdc = next((d["workloads"]["W2"]["plugin"] for d in modes.values() if "W2" in d["workloads"]), None)
        if cdc:
            parts.append(f"CDC {_ms_per_record(cdc.get('cpu_s'), cdc.get('changes'))} ms per change (W2; target ≤ 1)")
        hook = next((d["workloads"]["W3"]["plugin"] for d in modes.values() if "W3" in d["workloads"]), None)
        if hook:
            parts.append(f"webhook {_ms_per_record(hook['web']['cpu_s'], hook.get('notices'))} ms web CPU per notice "
                         f"(W3; target ≤ 1.5)")
        if parts:
            lines.append(f"- {LABELS.get(db, db)}: " + "; ".join(parts) + ".")
    return lines


# Measured by bench/txn_per_invoice.py on 76e8d14, the code issue #16 started from.
FIRST_INVOICE_BEFORE = {"transactions": 27, "commits": 11, "rollbacks": 16, "qbo_calls": 5}


def _first_invoice(now: dict[str, Any] | None) -> list[str]:
    """Transactions and QBO calls for a tenant's first invoice, before issue #16 and in this run."""
    if not now:
        return []
    rows = [[label, str(d["transactions"]), str(d["commits"]), str(d["rollbacks"]), str(d["qbo_calls"])]
            for label, d in (("before (76e8d14)", FIRST_INVOICE_BEFORE), ("this run", now))]
    calls = ", ".join(f"{k.removeprefix('call ')} {v}" for k, v in now.items() if k.startswith("call "))
    return ["", "## Transactions and API calls per first invoice (issue #16)", "",
            "`bench/txn_per_invoice.py`: one connected tenant on SQLite, one new contact (contact.created) and one "
            "sent invoice (invoice.sent) pushed by an in-process rq worker; transactions are the plugin engine's "
            "`begin` events until the worker is idle (commits and read-only rollbacks apart), QBO calls every "
            "request the plugin made.", "",
            *_table(["code", "transactions", "commits", "read-only", "QBO calls"], rows), "",
            f"QBO calls this run: {calls} — the floor for a new contact's first invoice. Gone since 76e8d14: the "
            "empty batch claim of a lone first invoice and its host reads, the claim's separate read, and the row's "
            "own completion (it commits with the invoice's link write)."]


def write_report(results: dict[str, Any], path: Path) -> None:
    m, v = results["machine"], results["versions"]
    # results from before the databases were measured apart were all SQLite
    databases: dict[str, Any] = results.get("databases") or {
        "sqlite": {"modes": results["modes"], **({"memory": results["memory"]} if results.get("memory") else {})}}
    json_name = str(results["args"].get("out", "bench/results/latest.json"))
    lines = [
        "# crm-qbo-plugin benchmarks",
        "",
        f"Generated by `python -m bench.run` (`make bench`, or `make bench-quick` for `--quick`); the numbers are in "
        f"`{json_name}`.",
        "Timings are reported, never asserted. Run it on a quiet machine: other load changes every figure.",
        "",
        f"- Date: {results['date']}; total run {results['total_wall_s']:.0f} s; arguments: `{results['args']}`",
        f"- Machine: {m['cpu']} × {m['cores']} cores, {m['memory_gb']} GB, {m['platform']}; load at start {m['load_at_start']}",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- Databases: SQLite (WAL) in a scratch folder; PostgreSQL from `scripts/pg-test-server` (fsync off, as the "
        "tests run it), a fresh database per mode. Redis: a private redis-server; host: the reference CRM.",
        "",
        "## Side by side",
        "",
        "The same rows on each database (details per database below).",
        "",
        *_side_by_side(databases),
        "",
        "## CPU per unit of work (issue #20)",
        "",
        *(_cpu_per_unit(databases) or ["- (no W2, W3 or W4 in this run)"]),
    ]
    lines += _first_invoice(results.get("first_invoice"))
    if FAIR_PEER_NOTE:
        lines += ["", "## The fair peer for import", "", FAIR_PEER_NOTE]
    lines += IN_THE_WAY
    lines += W6_NOTES
    if any(data.get("xero") for data in databases.values()):
        lines += ["", "## Xero (XI, XP, XW) — how to read it", "", *xero_report.NOTES]
    lines += ["", "Sandbox speed (`bench/sandbox_speed.py`, no throttles):", ""]
    lines += [f"- {line}" for line in results["sandbox_speed"]["lines"]]
    for db, data in databases.items():
        modes = data["modes"]
        label = LABELS.get(db, db)
        lines += ["", f"# {label}", "", f"## Modes ({label})", ""]
        mode_rows = [[name, _f(d["latency_ms"], 0), _f(d["clock_speed"], 0), "on" if d["throttled"] else "off",
                      f"{d['service']['page_s'] * 1000:.1f}", f"{d['service']['batch_s'] * 1000:.1f}",
                      _f(d["seed_s"], 1), _f(d.get("mode_wall_s"), 0)] for name, d in modes.items()]
        lines += _table(["mode", "added latency ms", "clock speed", "QBO throttles", "L: 1000-row page ms",
                         "L: 30-create batch ms", "seed s", "mode run s"], mode_rows)
        lines += ["", f"## Targets and what was measured ({label})", ""]
        memory_target, memory_table = _memory({**results, **data})
        lines += _targets(modes) + memory_target
        sections = (("W1 — import on connect", _w1), ("W2 — incremental CDC poll", _w2),
                    ("W3 — webhook burst", _w3), ("W4 — push through the outbox", _w4),
                    ("W5 — twenty tenants at once", _w5), ("W6 — many tenants, several worker processes", _w6))
        for title, render in sections:
            table = render(modes)
            if len(table) > 2:
                lines += ["", f"## {title} ({label})", "", *table]
        if data.get("xero"):
            lines += ["", f"## Xero — import, push at Xero's limits, webhook burst ({label})", "",
                      *xero_report.section(data["xero"])]
        if len(memory_table) > 2:
            lines += ["", f"## W1 at 100,000 customers + 100,000 invoices — memory ({label})", "", *memory_table]
    lines += ["", "## How the numbers are taken", "",
              "- Wall time: the harness's monotonic clock, from queuing the work to its end state in the database "
              "(SyncRun finished, inbox applied, outbox settled); plugin processes are started and idle before.",
              "- API calls: the sandbox's own counters (`/_sandbox/stats`), 429 refusals excluded and listed apart.",
              "- CPU from /proc counts in 10 ms ticks: at `--quick` sizes a per-unit CPU figure moves in coarse steps "
              "(40 notices: 0.25 ms a notice), so read it as an order of magnitude there.",
              "- Work queued before its workers start (W4, W5, W6) waits until every worker is up and its CPU marked "
              "(rq's suspension, lifted at the mark); the clock starts when the first worker leaves rq's suspension poll.",
              "- CPU and memory: only the plugin's processes (`crm-qbo worker`, `crm-qbo serve`), from /proc "
              "(utime+stime since the start mark; VmHWM). They include the reference CRM's host code they call. "
              "Peers: their own process (CPU from os.wait4's rusage, peak RSS from VmHWM sampled while it runs); "
              "their sink only counts records (no database writes), the plugin writes every record to the CRM.",
              "- Floors (perf-peers.md §6): L is measured per mode (table above). Import: pages of 1000 (+1 per entity "
              "when the count is a multiple of 1000), 10 in flight, 10 req/s when throttled. Push: invoices in "
              "batches of 30 at 40/min, new customers as single creates within 500/min.",
              "- Throttled mode: the sandbox's minute lasts 60/speed real seconds; the plugin's limiter windows and "
              "429 cool-down are scaled the same (bench/hostapp.py), latency is not.",
              "- Memory: the run ends with W1 at 100,000 customers + 100,000 invoices (× scale) in the zero mode, "
              "without peers, for the peak-RSS target (`--no-big` skips it).",
              "- W4 pushes the issue's 10,000 invoices (× scale) in the throttled mode (QBO's limits) and 1,000 "
              "(× scale) in the others, where the peers' one-request-per-invoice runs would dominate the run.",
              "- tap-quickbooks: qbo_sandbox rejects `Metadata.LastUpdatedTime` (QBO accepts it), so the shim "
              "respells it `MetaData.` for the tap only (bench/shim/sitecustomize.py).", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
