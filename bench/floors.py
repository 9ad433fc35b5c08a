"""QBO's physical floors (docs/reference/perf-peers.md §6) for the benchmark's sizes and modes.

Limits: 500 requests per realm per minute, 10 in flight, 40 batches per minute, 30 items per
batch, 1000 rows per query page. A "minute" is the sandbox's: with the clock sped up S times a
minute of QBO time lasts 60/S real seconds, while latency is real time. L is one call's time:
the mode's added latency plus the sandbox's own service time for that call (measured).
"""

from __future__ import annotations

import math
from typing import Any

PAGE = 1000
BATCH_ITEMS = 30
PER_MINUTE = 500
BATCHES_PER_MINUTE = 40
IN_FLIGHT = 10
REQUESTS_PER_SECOND = 10  # the "10 requests/second per realm and app" reading (perf-peers §6.1)


def import_calls(customers: int, invoices: int) -> int:
    """Pages of 1000, plus one terminator page (or one COUNT) per entity whose count is a multiple
    of 1000 — the client cannot know a full page was the last one without it."""
    def pages(n: int) -> int:
        return max(1, math.ceil(n / PAGE) + (1 if n % PAGE == 0 else 0))
    return pages(customers) + pages(invoices)


def import_floor(customers: int, invoices: int, call_s: float, throttled: bool, speed: float) -> dict[str, Any]:
    calls = import_calls(customers, invoices)
    concurrency = math.ceil(calls / IN_FLIGHT) * call_s
    rate = calls / REQUESTS_PER_SECOND / speed if throttled else 0.0
    sequential = calls * call_s
    return {"calls": calls, "strict_calls": math.ceil(customers / PAGE) + math.ceil(invoices / PAGE),
            "wall_s": round(max(concurrency, rate), 3), "sequential_wall_s": round(sequential, 3),
            "calls_per_record": round(calls / max(1, customers + invoices), 5)}


def push_floor(invoices: int, customers: int, call_s: float, throttled: bool, speed: float) -> dict[str, Any]:
    """Invoices in batches of 30; new customers as single creates in the rest of the 500/minute."""
    batches = math.ceil(invoices / BATCH_ITEMS)
    calls = batches + customers
    if throttled:
        minutes = max(batches / BATCHES_PER_MINUTE, calls / PER_MINUTE)
        wall = max(minutes * 60.0 / speed, math.ceil(calls / IN_FLIGHT) * call_s)
    else:
        wall = math.ceil(calls / IN_FLIGHT) * call_s
    return {"calls": calls, "batches": batches, "singles": customers, "wall_s": round(wall, 3),
            "calls_per_record": round(calls / max(1, invoices + customers), 5),
            "qbo_minutes": round(max(batches / BATCHES_PER_MINUTE, calls / PER_MINUTE), 3)}


def poll_floor(changes: int) -> dict[str, Any]:
    """One CDC call covers both entities while at most 1000 objects changed."""
    return {"calls": max(1, math.ceil(changes / 1000))}


def webhook_floor(notices: int) -> dict[str, Any]:
    """One `Id IN (…)` query per 1000 notices of an entity (perf-peers §6.4); one GET each is E."""
    return {"calls": max(1, math.ceil(notices / 1000)), "calls_one_read_each": notices}
