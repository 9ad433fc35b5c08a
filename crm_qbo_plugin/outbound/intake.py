"""Outbox intake: a host event becomes one durable row, then a job.

The row is committed before anything is enqueued, and the same event key gives the same row, so a
host that publishes twice, or a Redis that loses the job, never loses or doubles the event.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

import redis
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from crm_qbo_plugin.events import MAX_ID_LENGTH, EventError, HostEvent
from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.jobs.queues import enqueue_outbox
from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

# How long a freshly enqueued row may wait before the sweeper assumes its job was lost.
ENQUEUE_LEASE = timedelta(minutes=2)
ECHO_REASON = "came from QuickBooks; it is never pushed back"


@dataclass(frozen=True)
class PublishResult:
    outbox_id: int
    created: bool


def validate_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > MAX_ID_LENGTH:
        raise EventError(f"tenant: must be 1 to {MAX_ID_LENGTH} characters")
    return tenant


def publish(state: PluginState, tenant: str, event: HostEvent) -> PublishResult:
    """Record `event` for `tenant` in the outbox (once per event key) and enqueue it after commit."""
    validate_tenant(tenant)
    if not isinstance(event, HostEvent):
        raise EventError("event: must be a HostEvent")
    now = utcnow()
    # A change the host made because we told it to (origin QBO) is recorded for the history but
    # never pushed: it is settled here, without a job, so an import does not queue its own echo.
    echo = event.origin is Origin.QBO
    row = OutboxEvent(
        tenant_id=tenant,
        event_key=event.key,
        event_type=event.type.value,
        subject_id=event.subject_id,
        origin=event.origin.value,
        source=event.source.value if event.source else None,
        status=(OutboxStatus.SKIPPED if echo else OutboxStatus.PENDING).value,
        last_error=ECHO_REASON if echo else None,
        request_id=uuid.uuid4().hex,
        occurred_at=event.occurred_at,
        lease_until=None if echo else now + ENQUEUE_LEASE,
    )
    with session(state.engine) as db:
        db.add(row)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            existing = db.exec(
                select(OutboxEvent).where(OutboxEvent.tenant_id == tenant, OutboxEvent.event_key == event.key)
            ).one()
            assert existing.id is not None
            return PublishResult(existing.id, created=False)
    assert row.id is not None
    if echo:
        return PublishResult(row.id, created=True)
    try:
        enqueue_outbox(state.queue, row.id)
    except redis.RedisError as exc:
        # The row is durable; the sweeper enqueues it once its lease runs out.
        log.warning("outbox row %s saved but not enqueued (%s); the sweeper will pick it up", row.id, type(exc).__name__)
    return PublishResult(row.id, created=True)
