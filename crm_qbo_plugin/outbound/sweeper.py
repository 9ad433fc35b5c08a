"""Re-enqueue outbox rows whose lease ran out: a lost job, a flushed Redis or a killed worker
costs latency, never data."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa

from crm_qbo_plugin.outbound.intake import ENQUEUE_LEASE
from crm_qbo_plugin.runtime.queue import enqueue_outbox
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)


def sweep_outbox(state: Services, now: datetime | None = None, limit: int = 500) -> int:
    """Enqueue up to `limit` rows whose lease expired; returns how many were enqueued."""
    now = now or utcnow()
    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    live = table.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.PROCESSING.value])
    expired = sa.and_(live, table.c.lease_until < now)
    enqueued = 0
    with state.engine.connect() as conn:
        ids = list(conn.execute(sa.select(table.c.id).where(expired).order_by(table.c.id).limit(limit)).scalars())
    for outbox_id in ids:
        with state.engine.begin() as conn:
            # Hand the row back as pending with a fresh lease, guarded, so two sweepers never
            # enqueue the same row twice and the new job can claim a row a dead worker held.
            result = conn.execute(
                table.update()
                .where(table.c.id == outbox_id, expired)
                .values(status=OutboxStatus.PENDING.value, lease_until=now + ENQUEUE_LEASE)
            )
        if result.rowcount != 1:
            continue
        try:
            enqueue_outbox(state.queue, outbox_id)
        except redis.RedisError as exc:
            log.warning("sweeper could not enqueue outbox row %s (%s)", outbox_id, type(exc).__name__)
            break
        enqueued += 1
    if enqueued:
        log.info("sweeper re-enqueued %d outbox rows", enqueued)
    return enqueued


def resend_waiting(state: Services, tenant: str, now: datetime | None = None) -> int:
    """"Sync now": a tenant's pending rows waiting out a backoff are due now; returns how many."""
    now = now or utcnow()
    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    with state.engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.tenant_id == tenant, table.c.status == OutboxStatus.PENDING.value, table.c.lease_until > now)
            .values(lease_until=now - timedelta(seconds=1))
        )
    return sweep_outbox(state, now=now)
