"""Re-enqueue outbox rows whose lease ran out: a lost job, a flushed Redis or a killed worker
costs latency, never data."""

from __future__ import annotations

import logging
from datetime import datetime

import redis

from crm_qbo_plugin.runtime.queue import enqueue_outbox
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import outbox
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)


def sweep_outbox(state: Services, now: datetime | None = None, limit: int = 500) -> int:
    """Enqueue up to `limit` rows whose lease expired; returns how many were enqueued."""
    now = now or utcnow()
    enqueued = 0
    for outbox_id in outbox.expired(state.engine, now, limit):
        if not outbox.reissue(state.engine, outbox_id, now):
            continue
        try:
            enqueue_outbox(state.queue, outbox_id)
        except redis.RedisError as exc:
            log.warning("outbox.sweep_not_enqueued outbox_id=%s error=%s", outbox_id, type(exc).__name__)
            break
        enqueued += 1
    if enqueued:
        log.info("outbox.swept enqueued=%d", enqueued)
    return enqueued


def resend_waiting(state: Services, tenant: str, now: datetime | None = None) -> int:
    """"Sync now": a tenant's pending rows waiting out a backoff are due now; returns how many."""
    now = now or utcnow()
    outbox.due_now(state.engine, tenant, now)
    return sweep_outbox(state, now=now)
