"""The scheduler process: APScheduler, made single-leader with a Redis lock. It only enqueues or
sweeps; the work itself runs in the rq workers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from apscheduler.schedulers.background import BackgroundScheduler

from crm_qbo_plugin import logs
from crm_qbo_plugin.automations.claims import complete_unfinished
from crm_qbo_plugin.inbound.cdc import enqueue_polls
from crm_qbo_plugin.inbound.xero_poll import enqueue_xero_polls
from crm_qbo_plugin.jobs.automation_tasks import CHECK_OVERDUE
from crm_qbo_plugin.onboarding.keepalive import refresh_idle_connections
from crm_qbo_plugin.outbound.sweeper import sweep_outbox
from crm_qbo_plugin.runtime.locks import LeaderLock
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.connections import connected
from crm_qbo_plugin.store.retention import Pruned, prune_settled
from crm_qbo_plugin.store.types import Provider

log = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.5  # how often the main thread looks whether it was asked to stop


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    every_seconds: float
    run: Callable[[], object]
    # Also run as soon as this scheduler leads (at start, or on taking over from a dead leader),
    # instead of a whole interval later.
    run_at_start: bool = False


class LeaderScheduler:
    """Runs `jobs` on their intervals, but only while this process holds the leader lock."""

    def __init__(self, connection: redis.Redis, jobs: list[ScheduledJob], lock_ttl: float = 30.0,
                 heartbeat: float | None = None) -> None:
        self.lock = LeaderLock(connection, ttl_seconds=lock_ttl)
        self.heartbeat = heartbeat if heartbeat is not None else lock_ttl / 3
        self._jobs = jobs
        self._leader = False
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self.runs: dict[str, int] = {job.name: 0 for job in jobs}

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _beat(self) -> None:
        try:
            leading = self.lock.try_acquire_or_renew()
        except redis.RedisError as exc:
            log.warning("scheduler.redis_unreachable error=%s leader=false", type(exc).__name__)
            leading = False
        if leading != self._leader:
            log.info("scheduler.leader leading=%s", leading)
        became_leader = leading and not self._leader
        self._leader = leading
        if became_leader and self._scheduler.running:
            self._run_start_jobs_now()

    def _run_start_jobs_now(self) -> None:
        now = datetime.now(UTC)
        for job in self._jobs:
            if job.run_at_start:
                self._scheduler.modify_job(job.name, next_run_time=now)

    def _guarded(self, job: ScheduledJob) -> Callable[[], None]:
        def run() -> None:
            if not self._leader:
                return
            try:
                job.run()
                self.runs[job.name] += 1
            except Exception:
                log.exception("scheduler.job_failed job=%s", job.name)
        return run

    def start(self) -> None:
        self._beat()
        self._scheduler.add_job(self._beat, "interval", seconds=self.heartbeat, id="leader-heartbeat",
                                max_instances=1, coalesce=True)
        now = datetime.now(UTC)
        for job in self._jobs:
            first = {"next_run_time": now} if job.run_at_start else {}  # else one interval from now
            self._scheduler.add_job(self._guarded(job), "interval", seconds=job.every_seconds, id=job.name,
                                    max_instances=1, coalesce=True, **first)
        self._scheduler.start()

    def stop(self, release: bool = True) -> None:
        """Stop; `release=False` imitates a crash (the lock stays until its TTL runs out)."""
        self._scheduler.shutdown(wait=True)
        if release and self._leader:
            self.lock.release()
        self._leader = False

    def run_forever(self, stop: threading.Event) -> None:
        """Run until `stop` is set (by the SIGTERM handler). The main thread waits in short slices:
        a signal the kernel hands to one of the scheduler's threads does not wake a wait without a
        timeout, and Python runs signal handlers on the main thread only — SIGTERM went unheard."""
        self.start()
        try:
            while not stop.wait(STOP_POLL_SECONDS):
                pass
        finally:
            self.stop()


def enqueue_for_connected(state: Services, task: str, provider: str = Provider.QUICKBOOKS.value) -> int:
    """Enqueue `task(connection_id)` for every connected tenant of `provider` (ids only)."""
    ids = [conn.id for conn in connected(state.engine, provider)]
    for connection_id in ids:
        state.queue.enqueue(task, connection_id, job_timeout=600, result_ttl=60, failure_ttl=86400)
    return len(ids)


def plugin_jobs(services: Services,
                in_context: Callable[[], AbstractContextManager[object]] = nullcontext) -> list[ScheduledJob]:
    """The plugin's periodic work; each runs inside `in_context()` (the host app's context, which
    the host's reads may need)."""

    def in_app(fn: Callable[[Services], object]) -> Callable[[], object]:
        def run() -> object:
            with in_context(), logs.bind(tenant="*", realm="*"):  # periodic jobs span every tenant
                return fn(services)
        return run

    return [
        ScheduledJob("outbox-sweeper", 15, in_app(sweep_outbox)),
        ScheduledJob("token-keepalive", 6 * 3600, in_app(refresh_idle_connections)),
        ScheduledJob("cdc-poll", services.settings.poll_seconds, in_app(enqueue_polls), run_at_start=True),
        ScheduledJob("xero-poll", services.settings.poll_seconds,
                     in_app(enqueue_xero_polls), run_at_start=True),
        ScheduledJob("automation-claims", 60, in_app(complete_unfinished)),
        ScheduledJob("overdue-invoices", 24 * 3600, in_app(lambda s: sum(
            enqueue_for_connected(s, CHECK_OVERDUE, provider) for provider in Provider))),
        ScheduledJob("retention", RETENTION_EVERY_SECONDS, in_app(prune)),
    ]


# Retention: settled rows older than CRM_QBO_RETENTION_DAYS are deleted (store/retention.py), hourly.
RETENTION_EVERY_SECONDS = 3600


def prune(state: Services) -> Pruned:
    pruned = prune_settled(state.engine, state.settings.retention_days)
    if any(pruned.as_dict().values()):
        log.info("retention.pruned %s", " ".join(f"{k}={v}" for k, v in pruned.as_dict().items()))
    return pruned
