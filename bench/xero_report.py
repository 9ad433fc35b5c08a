"""The Xero part of bench/RESULTS.md (issue #19): XI import, XP push at Xero's limits and XW
webhook burst, with the xero-python and pyxero peers, per database."""

from __future__ import annotations

from typing import Any

from bench.report_tables import f, ms_per, ok, ratio, table

NOTES = [
    "- One organisation per workload, Xero's limits on (5 in flight, 60 a minute); the sandbox's clock runs "
    "`clock speed` times faster, so a Xero minute lasts 60/speed real seconds (the plugin's limiter is scaled the "
    "same, bench/hostapp.py). L is a 50-invoice PUT, measured.",
    "- Floor: contacts then invoices in arrays of 50 (Xero's advice), ≤ 60 calls in any rolling Xero minute (the "
    "first 60 at once; each further 60 a whole Xero minute later), ≤ 5 at once. Also shown: the floor with one "
    "record per call. Target: the plugin ≥ 90% of the floor its limits allow (floor wall / plugin wall), 0 429s "
    "after the first Xero minute.",
    "- XP of 1,000 invoices needs 22 calls, within the first minute's 60: there the floor is only the sandbox's "
    "service time (5 rounds of L), which no client reaches — the peers, which only write, neither — and the "
    "figure shows CPU. *XP on Xero's own clock* (clock speed 1, not in `--quick`) pushes enough invoices that the "
    "arrays need more than 60 calls: there Xero's limits are the floor, and a call spent on anything else (a "
    "contact lookup per batch, a 429) can cost a whole minute.",
    "- XI: the import a Xero connect queues (contacts, then invoices with the toggle on), timed from the job "
    "being queued to its run's end; floor: pages of 1,000 (+1 short page per entity whose count is a multiple "
    "of 1,000). Peers read the same pages with xero-python's `get_contacts`/`get_invoices` and pyxero's "
    "`filter(page=…, pageSize=1000)` and write nothing.",
    "- XW pays XP's invoices in Xero (the harness, limits off), then sends one signed notice per invoice, open-loop, "
    "to two `crm-qbo serve` processes; done when every notice is settled and every payment is on its CRM invoice.",
    "- Peers (bench/peer_scripts/xero_peers.py): the same contacts and invoices written with xero-python's "
    "`create_contacts`/`create_invoices` and pyxero's `put`, arrays of 50, one request after another; they write "
    "nothing to a CRM and keep no links.",
]


def section(xero: dict[str, Any] | None) -> list[str]:
    if not xero:
        return []
    w = xero["workloads"]
    lines = [f"Clock speed {f(xero['clock_speed'], 0)}; L (50-invoice PUT) {xero['call_s'] * 1000:.1f} ms.", ""]
    if "XI" in w:
        xi = w["XI"]
        rows = [[name, f(entry.get("wall_s"), 3), f(xi["floor"]["wall_s"], 3), ratio(entry.get("wall_s"),
                 xi["floor"]["wall_s"]), ratio(entry.get("wall_s"), xi["plugin"]["wall_s"]), f(entry.get("calls")),
                 f(entry.get("throttled_429")), ms_per(entry.get("cpu_s"), xi["plugin"]["records"], 2),
                 f(entry.get("peak_rss_mb"), 1), ok(entry)]
                for name in ("plugin", "xero-python", "pyxero") if (entry := xi.get(name))]
        lines += [f"XI: import of {xi['plugin']['records'] // 2} contacts + {xi['plugin']['records'] // 2} invoices; "
                  f"floor {xi['floor']['calls']} pages of 1,000 (L {xi['page_s'] * 1000:.1f} ms a page).", ""]
        lines += table(["who", "wall s", "floor s", "× floor", "× the plugin", "calls", "429s", "CPU ms/record",
                        "peak RSS MB", "correct"], rows)
        lines += [""]
    if "XP" in w:
        xp = w["XP"]
        floor, single = xp["floor"], xp["floor_one_per_call"]
        rows = []
        for name in ("plugin", "xero-python", "pyxero"):
            entry = xp.get(name)
            if not entry:
                continue
            wall = entry.get("wall_s")
            rows.append([name, f(wall, 3), f(floor["wall_s"], 3), _share(floor["wall_s"], wall),
                         _share(single["wall_s"], wall), f(entry.get("calls")),
                         f(entry.get("throttled_after_warmup", entry.get("throttled_429"))),
                         ms_per(entry.get("cpu_s"), xp["plugin"]["invoices"], 2),
                         f(entry.get("peak_rss_mb"), 1), ok(entry)])
        lines += [f"XP: {xp['plugin']['invoices']} invoices, {xp['plugin']['contacts']} new contacts; floor "
                  f"{floor['calls']} calls in arrays of 50 ({single['calls']} one record a call).", ""]
        lines += table(["who", "wall s", "floor s", "of the floor (arrays of 50)", "of the floor (one a call)",
                        "calls", "429s after warm-up", "CPU ms/invoice", "peak RSS MB", "correct"], rows)
        lines += [""]
        if "at_limits" in xp:
            lines += _at_limits(xp["at_limits"])
    if "XW" in w:
        xw = w["XW"]["plugin"]
        lines += table(["notices", "ack p50 ms", "ack p99 ms", "consistent after s", "web CPU ms/notice",
                        "worker CPU ms/notice", "calls", "429s", "correct"],
                       [[f(xw["notices"]), f(xw["ack_p50_ms"]), f(xw["ack_p99_ms"]), f(xw["consistent_after_s"]),
                         f(xw["web_cpu_ms_per_notice"]), ms_per(xw["workers"]["cpu_s"], xw["notices"], 2),
                         f(xw["calls"]), f(xw["throttled_429"]), ok(w["XW"]["plugin"])]])
    return lines


def _at_limits(run: dict[str, Any]) -> list[str]:
    plugin, floor = run["plugin"], run["floor"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(plugin.get("by_endpoint", {}).items()))
    return [f"XP on Xero's own clock: {plugin['invoices']} invoices, {plugin['contacts']} new contacts; floor "
            f"{floor['calls']} calls in arrays of 50 (L {run['call_s'] * 1000:.1f} ms). The plugin's calls: {calls}.",
            "", *table(["who", "wall s", "floor s", "of the floor", "calls", "429s", "429s after warm-up",
                        "CPU ms/invoice", "peak RSS MB", "correct"],
                       [["plugin", f(plugin["wall_s"], 3), f(floor["wall_s"], 3), _share(floor["wall_s"], plugin["wall_s"]),
                         f(plugin.get("calls")), f(plugin.get("throttled_429")), f(plugin.get("throttled_after_warmup")),
                         ms_per(plugin.get("cpu_s"), plugin["invoices"], 2), f(plugin.get("peak_rss_mb"), 1),
                         ok(plugin)]]), ""]


def _share(floor_s: Any, wall_s: Any) -> str:
    if not isinstance(floor_s, int | float) or not isinstance(wall_s, int | float) or not wall_s:
        return "–"
    return f"{100.0 * floor_s / wall_s:.0f}%"
