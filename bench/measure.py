"""Shared measurement pieces: waiting on the database, CPU/RSS of plugin processes, sandbox counts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from bench.infra import BenchError, Proc, Stack, peak_rss_mb


def scalar(st: Stack, sql: str, **params: Any) -> Any:
    from crm_qbo_plugin.state import get_state

    with get_state(st.app()).engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(st: Stack, sql: str, **params: Any) -> list[Any]:
    from crm_qbo_plugin.state import get_state

    with get_state(st.app()).engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def wait_until(check: Callable[[], bool], what: str, timeout: float, procs: Sequence[Proc] = (),
               tick: Callable[[], None] | None = None, interval: float = 0.1) -> float:
    """Poll `check` until true; returns the seconds waited. `tick` runs each round (a sweeper)."""
    started = time.perf_counter()
    while not check():
        for proc in procs:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited while waiting for {what}")
        if time.perf_counter() - started > timeout:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        if tick is not None:
            tick()
        time.sleep(interval)
    return time.perf_counter() - started


def plugin_usage(procs: Sequence[Proc]) -> dict[str, float]:
    """CPU seconds since each process's mark, summed, and the largest peak RSS."""
    return {
        "cpu_s": round(sum(p.cpu_since_mark() for p in procs), 3),
        "peak_rss_mb": round(max((peak_rss_mb(p.pid) for p in procs), default=0.0), 1),
    }


def api_counts(stats: dict[str, Any], realms: Sequence[str] | None = None) -> dict[str, Any]:
    """The sandbox's counters in the benchmark's terms (calls exclude 429 refusals)."""
    by_endpoint = dict(stats.get("by_endpoint", {}))
    throttled = int(stats.get("throttled", 0))
    total = int(stats.get("requests", 0))
    if realms is not None:
        total = sum(int(stats.get("by_realm", {}).get(r, 0)) for r in realms)
    return {"calls": total - throttled, "throttled_429": throttled, "by_endpoint": by_endpoint,
            "max_in_flight": stats.get("max_in_flight")}


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def per_thousand(cpu_s: float, records: int) -> float:
    return round(cpu_s * 1000.0 / records, 3) if records else 0.0


def purge_echoes(st: Stack) -> int:
    """Drop the queued jobs of origin-QBO echo events (workers stopped) and mark their rows skipped.

    Used between workloads when draining the echoes is not what is measured; returns how many."""
    from crm_qbo_plugin.state import get_state

    state = get_state(st.app())
    state.queue.empty()
    with state.engine.begin() as conn:
        done = conn.execute(sa.text(
            "UPDATE qbo_outbox SET status = 'skipped', last_error = 'bench: echo not drained' "
            "WHERE origin = 'qbo' AND status IN ('pending', 'processing')"))
    return int(done.rowcount or 0)
