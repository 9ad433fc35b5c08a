"""Outbox intake: a host event becomes one durable row, then a job.

The row is committed before anything is enqueued, and the same event key gives the same row, so a
host that publishes twice, or a Redis that loses the job, never loses or doubles the event.
`publish_many` does the same for many events in one transaction (a host writing an import page
publishes the page's events together instead of one commit each).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from crm_qbo_plugin.events import EventError, HostEvent, check_id
from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.outbound.decision import ECHO_REASON
from crm_qbo_plugin.runtime.queue import enqueue_outbox
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import outbox
from crm_qbo_plugin.store.outbox import ENQUEUE_LEASE
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class PublishResult:
    outbox_id: int
    created: bool


def validate_tenant(tenant: str) -> str:
    return check_id("tenant", tenant)


def _check_event(event: object) -> HostEvent:
    if not isinstance(event, HostEvent):
        raise EventError("event: must be a HostEvent")
    return event


def publish(state: Services, tenant: str, event: HostEvent) -> PublishResult:
    """Record `event` for `tenant` in the outbox (once per event key) and enqueue it after commit."""
    validate_tenant(tenant)
    _check_event(event)
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
    row_id, created = outbox.insert(state.engine, row)
    if not created or echo:
        return PublishResult(row_id, created=created)
    try:
        enqueue_outbox(state.queue, row_id)
    except redis.RedisError as exc:
        # The row is durable; the sweeper enqueues it once its lease runs out.
        log.warning("outbox.not_enqueued outbox_id=%s error=%s", row_id, type(exc).__name__)
    return PublishResult(row_id, created=True)


def _row(tenant: str, event: HostEvent, now: datetime) -> dict[str, Any]:
    echo = event.origin is Origin.QBO  # settled at once, as in `publish`
    return {
        "tenant_id": tenant, "event_key": event.key, "event_type": event.type.value, "subject_id": event.subject_id,
        "origin": event.origin.value, "source": event.source.value if event.source else None,
        "status": (OutboxStatus.SKIPPED if echo else OutboxStatus.PENDING).value,
        "request_id": uuid.uuid4().hex, "attempts": 0, "lease_until": None if echo else now + ENQUEUE_LEASE,
        "last_error": ECHO_REASON if echo else None, "occurred_at": event.occurred_at,
        "created_at": now, "updated_at": now,
    }


def publish_many(state: Services, tenant: str, events: Sequence[HostEvent]) -> list[PublishResult]:
    """`publish` for many events: one transaction records them all (once per event key: a key
    already stored, or repeated in `events`, makes no second row), then the new non-echo rows are
    enqueued. Every input is checked before anything is written; results follow `events`' order."""
    validate_tenant(tenant)
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise EventError("events: must be a sequence of HostEvent")
    checked = [_check_event(event) for event in events]
    if not checked:
        return []
    now = utcnow()
    unique: dict[str, HostEvent] = {}
    for event in checked:
        unique.setdefault(event.key, event)  # the first event of a repeated key is the one kept
    ids, created = outbox.insert_many(state.engine, tenant, [_row(tenant, event, now) for event in unique.values()])
    results: list[PublishResult] = []
    reported: set[str] = set()
    for event in checked:  # a repeated key is "created" once, at its first place
        results.append(PublishResult(ids[event.key], created=event.key in created and event.key not in reported))
        reported.add(event.key)
    for key, event in unique.items():  # in the events' order, as one publish after another would
        if key in created and event.origin is not Origin.QBO:
            row_id = ids[key]
            try:
                enqueue_outbox(state.queue, row_id)
            except redis.RedisError as exc:  # durable; the sweeper enqueues it after its lease
                log.warning("outbox.not_enqueued outbox_id=%s error=%s", row_id, type(exc).__name__)
    return results
