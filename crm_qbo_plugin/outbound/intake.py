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
from datetime import datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from crm_qbo_plugin.events import EventError, HostEvent, check_id
from crm_qbo_plugin.host import Origin
from crm_qbo_plugin.runtime.queue import enqueue_outbox
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

# How long a freshly enqueued row may wait before the sweeper assumes its job was lost.
ENQUEUE_LEASE = timedelta(minutes=2)
ECHO_REASON = "came from QuickBooks; it is never pushed back"
OUTBOX = OutboxEvent.__table__  # type: ignore[attr-defined]
IN_CHUNK = 500  # keys per IN (...) query


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


def _insert_new(conn: DbConnection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert `rows`, skipping keys already stored (ON CONFLICT DO NOTHING, so a concurrent
    publisher of the same key never fails the batch); returns {event_key: id} of the rows made.
    One cached statement, executed for many rows (SQLAlchemy batches them into multi-row INSERTs)."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"publish_many supports SQLite and PostgreSQL, not {dialect}")
    insert: Any = postgresql.insert(OUTBOX) if dialect == "postgresql" else sqlite.insert(OUTBOX)
    statement = insert.on_conflict_do_nothing(index_elements=["tenant_id", "event_key"]).returning(
        OUTBOX.c.id, OUTBOX.c.event_key)
    return {str(key): int(row_id) for row_id, key in conn.execute(statement, rows)}


def _existing(conn: DbConnection, tenant: str, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(keys), IN_CHUNK):
        rows = conn.execute(
            sa.select(OUTBOX.c.event_key, OUTBOX.c.id)
            .where(OUTBOX.c.tenant_id == tenant, OUTBOX.c.event_key.in_(keys[start:start + IN_CHUNK]))
        )
        found.update({str(key): int(row_id) for key, row_id in rows})
    return found


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
    with state.engine.begin() as conn:
        created = _insert_new(conn, [_row(tenant, event, now) for event in unique.values()])
        known = _existing(conn, tenant, [key for key in unique if key not in created])
    ids = {**known, **created}
    results: list[PublishResult] = []
    reported: set[str] = set()
    for event in checked:  # a repeated key is "created" once, at its first place
        results.append(PublishResult(ids[event.key], created=event.key in created and event.key not in reported))
        reported.add(event.key)
    for key, event in unique.items():  # in the events' order, as one publish after another would
        if key in created and event.origin is not Origin.QBO:
            row_id = created[key]
            try:
                enqueue_outbox(state.queue, row_id)
            except redis.RedisError as exc:  # durable; the sweeper enqueues it after its lease
                log.warning("outbox row %s saved but not enqueued (%s); the sweeper will pick it up",
                            row_id, type(exc).__name__)
    return results
