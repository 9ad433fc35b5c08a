"""The outbox row's state machine: claim (pending → processing, with a lease), finish (→ done,
skipped, failed, or back to pending with a retry time), and completion inside a link write.

A push's last step is its link write (store/links.py). While a row is being processed,
`completing(row, kind)` names the record it is for; the link write of that record marks the row
done in the same transaction, so a crash can never leave the link written and the row pending
(or the row done and the link unwritten).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow

PROCESSING_LEASE = timedelta(minutes=5)
_TABLE = OutboxEvent.__table__  # type: ignore[attr-defined]


def claim(engine: Engine, outbox_id: int, now: datetime) -> OutboxEvent | None:
    """Take the row if it is pending, or processing with an expired lease; None if someone has it.

    A conditional UPDATE, so two workers that get the same row cannot both push it."""
    claimable = sa.or_(
        _TABLE.c.status == OutboxStatus.PENDING.value,
        sa.and_(_TABLE.c.status == OutboxStatus.PROCESSING.value, _TABLE.c.lease_until < now),
    )
    with engine.begin() as conn:
        result = conn.execute(
            _TABLE.update()
            .where(_TABLE.c.id == outbox_id, claimable)
            .values(status=OutboxStatus.PROCESSING.value, lease_until=now + PROCESSING_LEASE,
                    attempts=_TABLE.c.attempts + 1, updated_at=now)
        )
        if result.rowcount != 1:
            return None
    with session(engine) as db:
        return db.get(OutboxEvent, outbox_id)


def finish(engine: Engine, row: OutboxEvent, status: OutboxStatus, error: str | None = None,
           retry_at: datetime | None = None) -> None:
    """Settle the row (or put it back to pending with `retry_at` as its lease)."""
    with session(engine) as db:
        fresh = db.get(OutboxEvent, row.id)
        if fresh is None:
            return
        fresh.status = status.value
        fresh.last_error = error
        fresh.lease_until = retry_at
        fresh.updated_at = utcnow()
        db.add(fresh)
        db.commit()
    row.status = status.value


@dataclass(frozen=True)
class _Completion:
    row: OutboxEvent
    kind: str


_completing: contextvars.ContextVar[_Completion | None] = contextvars.ContextVar("crm_qbo_completing", default=None)


@contextlib.contextmanager
def completing(row: OutboxEvent, kind: str) -> Iterator[None]:
    """While inside, the link write of (row's tenant, `kind`, row's subject) also marks `row` done."""
    token = _completing.set(_Completion(row, kind))
    try:
        yield
    finally:
        _completing.reset(token)


def complete_in(db: Session, tenant: str, kind: str, crm_ids: Sequence[str]) -> bool:
    """Within a link write's session: mark the row being processed done if the write is its record.

    Returns whether it did; the caller commits. `completed(row)` tells the processor afterwards."""
    target = _completing.get()
    if target is None or target.row.id is None:
        return False
    row = target.row
    if row.tenant_id != tenant or target.kind != kind or row.subject_id not in crm_ids:
        return False
    db.execute(_TABLE.update().where(_TABLE.c.id == row.id, _TABLE.c.status == OutboxStatus.PROCESSING.value)
               .values(status=OutboxStatus.DONE.value, last_error=None, lease_until=None, updated_at=utcnow()))
    row.status = OutboxStatus.DONE.value
    return True


def completed(row: OutboxEvent) -> bool:
    """Whether the row was marked done by its record's link write."""
    return row.status == OutboxStatus.DONE.value
