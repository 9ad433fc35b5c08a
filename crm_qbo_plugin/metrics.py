"""Operational counters, kept in Redis so every process on every machine adds to the same totals.

The work happens in rq workers and the scheduler; the web process only serves ``/metrics``. So a
count is one ``HINCRBY`` on a hash per metric (fields are the label value), and `RedisCollector`
reads the hashes at scrape time. Counting never fails the work: a Redis error drops the count and is
logged once, at debug.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

KEY_PREFIX = "crm_qbo:metrics:"


@dataclass(frozen=True)
class Counter:
    """One counter: its Prometheus name (without ``_total``), its one label (or none) and what it counts."""

    name: str
    label: str | None
    help: str


# Every counter the plugin keeps, by the short name code counts with.
COUNTERS: Mapping[str, Counter] = {
    "pushes": Counter("crm_qbo_outbox_pushes", "outcome", "Outbox rows finished, by outcome (done, skipped, failed, pending = retry later)."),
    "drains": Counter("crm_qbo_inbox_notices", "outcome", "Inbox notices drained, by outcome (applied, skipped, dead)."),
    "polls": Counter("crm_qbo_cdc_polls", "outcome", "CDC polls of a company, by outcome (completed, failed, busy)."),
    "failures": Counter("crm_qbo_failures", "kind", "Work that needs a person: outbox rows failed, inbox notices dead-lettered."),
    "throttled": Counter("crm_qbo_qbo_throttled", None, "HTTP 429 answers from QuickBooks."),
    "token_refreshes": Counter("crm_qbo_token_refreshes", "outcome", "QuickBooks token refreshes, by outcome (refreshed, reconnect_required, failed)."),
}

_warned = threading.Event()


def count(connection: redis.Redis | None, metric: str, amount: int = 1, **label: str) -> None:
    """Add `amount` to `metric` for its one label value, e.g. ``count(r, "pushes", outcome="done")``.

    Never raises for Redis trouble (the work it measures matters more than the count)."""
    spec = COUNTERS[metric]
    if connection is None or amount <= 0:
        return
    value = label.get(spec.label, "") if spec.label else ""
    try:
        connection.hincrby(KEY_PREFIX + metric, value, amount)
    except redis.RedisError as exc:
        if not _warned.is_set():
            _warned.set()
            log.debug("metrics.count_dropped metric=%s error=%s", metric, type(exc).__name__)


def read(connection: redis.Redis, metric: str) -> dict[str, int]:
    """The totals of one counter by label value (for the collector and tests)."""
    raw = connection.hgetall(KEY_PREFIX + metric)
    return {key.decode() if isinstance(key, bytes) else key: int(value) for key, value in raw.items()}


class RedisCollector(Collector):
    """Emits the Redis-kept counters and the queue depth at scrape time.

    `queue_depth` returns the work waiting right now by queue: the rq queue's jobs and the pending outbox
    rows, apart (a pending row usually has its job queued too, so a sum would count it twice)."""

    def __init__(self, connection: redis.Redis, queue_depth: Callable[[], dict[str, int]]) -> None:
        self._redis = connection
        self._queue_depth = queue_depth

    def collect(self) -> Iterable[Metric]:
        for metric, spec in COUNTERS.items():
            labels = [spec.label] if spec.label else []
            family = CounterMetricFamily(spec.name, spec.help, labels=labels)
            totals = read(self._redis, metric)
            if not labels:
                family.add_metric([], sum(totals.values()))
            for value, total in sorted(totals.items()) if labels else ():
                family.add_metric([value], total)
            yield family
        depth = GaugeMetricFamily("crm_qbo_queue_depth", "Work waiting right now, by queue: queued rq jobs "
                                  "(rq_jobs) and outbox rows waiting to be pushed (outbox_pending).", labels=["queue"])
        for queue, waiting in sorted(self._queue_depth().items()):
            depth.add_metric([queue], waiting)
        yield depth
