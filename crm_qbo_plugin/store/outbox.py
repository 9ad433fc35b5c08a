"""The outbox row's state machine, all of it: insert (publish), claim one row or a batch, release,
finish one or many (→ done, skipped, failed, or back to pending with a retry time), the sweep of
expired leases, and retry. Enqueueing stays with the callers (runtime/queue.py): this module
only writes rows.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.host import Origin
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
        taken = conn.execute(sa.select(_TABLE).where(_TABLE.c.id == outbox_id)).mappings().one()
    return OutboxEvent(**taken)  # read in the claim's own transaction


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
    """While inside, the link write of (row's tenant, `kind`, row's subject) also marks `row` done,
    in the link write's transaction: a worker that dies between the two can no longer leave a
    pushed record's row to be run again (the design's "link and completion commit together")."""
    token = _completing.set(_Completion(row, kind))
    try:
        yield
    finally:
        _completing.reset(token)


def complete_in(db: Session, tenant: str, kind: str, crm_ids: Sequence[str]) -> bool:
    """Within a link write's session: mark the row being processed done if the write is its record."""
    target = _completing.get()
    if target is None or target.row.id is None:
        return False
    row = target.row
    if row.tenant_id != tenant or target.kind != kind or row.subject_id not in crm_ids:
        return False
    done = db.connection().execute(_TABLE.update().where(_TABLE.c.id == row.id, _TABLE.c.status == OutboxStatus.PROCESSING.value)
                                   .values(status=OutboxStatus.DONE.value, last_error=None, lease_until=None,
                                           updated_at=utcnow()))
    if done.rowcount != 1:
        return False
    row.status = OutboxStatus.DONE.value
    return True


def completed(row: OutboxEvent) -> bool:
    """Whether `row` was marked done already (by its record's link write, see `completing`)."""
    return row.status == OutboxStatus.DONE.value


# How long a freshly enqueued row may wait before the sweeper assumes its job was lost.
ENQUEUE_LEASE = timedelta(minutes=2)


def _first_sends(tenant: str, exclude_id: int | None, connected_at: datetime | None) -> sa.Select[Any]:
    """Never-tried `invoice.sent` rows of the tenant from the CRM that no batch has handed back
    (their `last_error` is empty), oldest first: what a batch may take."""
    query = sa.select(_TABLE.c.id).where(
        _TABLE.c.tenant_id == tenant,
        _TABLE.c.status == OutboxStatus.PENDING.value,
        _TABLE.c.event_type == EventType.INVOICE_SENT.value,
        _TABLE.c.attempts == 0,
        _TABLE.c.origin == Origin.CRM.value,
        _TABLE.c.last_error.is_(None),
    )
    if exclude_id is not None:
        query = query.where(_TABLE.c.id != exclude_id)
    if connected_at is not None:
        query = query.where(_TABLE.c.occurred_at >= connected_at)
    return query.order_by(_TABLE.c.id)


def backlog(engine: Engine, tenant: str, exclude_id: int | None, connected_at: datetime | None,
            at_least: int) -> bool:
    """Whether at least `at_least` rows wait that a batch could take: one read, so a lone first
    invoice costs no claim (a write) and no second read of its records."""
    with engine.connect() as conn:
        found = conn.execute(_first_sends(tenant, exclude_id, connected_at).limit(at_least)).scalars().all()
    return len(found) >= at_least


def claim_batch(engine: Engine, tenant: str, exclude_id: int | None, connected_at: datetime | None,
                limit: int, lease: timedelta) -> list[OutboxEvent]:
    """Claim up to `limit` waiting first sends in one transaction, as `claim` would (processing, a
    `lease`, one more attempt); returns them oldest first. Two leaders never claim the same row."""
    now = utcnow()
    pick = _first_sends(tenant, exclude_id, connected_at).limit(limit)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Lock the picked rows first, skipping those another leader is taking: a locking
            # sub-select inside the UPDATE may be run again per row and take more than `limit`.
            chosen = list(conn.execute(pick.with_for_update(skip_locked=True)).scalars())
            where = _TABLE.c.id.in_(chosen)
        else:
            where = _TABLE.c.id.in_(pick)  # SQLite runs the sub-select once, under its write lock
        ids = list(conn.execute(
            _TABLE.update()
            .where(where, _TABLE.c.status == OutboxStatus.PENDING.value, _TABLE.c.attempts == 0)
            .values(status=OutboxStatus.PROCESSING.value, lease_until=now + lease,
                    attempts=_TABLE.c.attempts + 1, updated_at=now)
            .returning(_TABLE.c.id)
        ).scalars())
    if not ids:
        return []
    with session(engine) as db:
        return list(db.exec(select(OutboxEvent).where(col(OutboxEvent.id).in_(ids)).order_by(col(OutboxEvent.id))).all())


def release(engine: Engine, rows: Sequence[OutboxEvent], reason: str | None = None) -> None:
    """Hand claimed rows back untouched (pending, the attempt given back, due now); `reason` keeps
    them out of later batches."""
    if not rows:
        return
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            _TABLE.update()
            .where(_TABLE.c.id.in_([r.id for r in rows]), _TABLE.c.status == OutboxStatus.PROCESSING.value)
            .values(status=OutboxStatus.PENDING.value, attempts=_TABLE.c.attempts - 1, lease_until=now,
                    last_error=reason, updated_at=now)
        )


def finish_many(engine: Engine, rows: Sequence[OutboxEvent], status: OutboxStatus, error: str | None = None,
                retry_at: datetime | None = None) -> None:
    """`finish` for many rows at once, in one transaction."""
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(
            _TABLE.update()
            .where(_TABLE.c.id.in_([r.id for r in rows]))
            .values(status=status.value, last_error=error, lease_until=retry_at, updated_at=utcnow())
        )


def _expired(now: datetime) -> sa.ColumnElement[bool]:
    live = _TABLE.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.PROCESSING.value])
    return sa.and_(live, _TABLE.c.lease_until < now)


def expired(engine: Engine, now: datetime, limit: int) -> list[int]:
    """Ids of up to `limit` live rows whose lease ran out (a lost job, a killed worker, a retry due)."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(_TABLE.c.id).where(_expired(now)).order_by(_TABLE.c.id).limit(limit)).scalars())


def reissue(engine: Engine, outbox_id: int, now: datetime) -> bool:
    """Hand an expired row back as pending with a fresh enqueue lease, guarded, so two sweepers
    never enqueue the same row twice and the new job can claim a row a dead worker held."""
    with engine.begin() as conn:
        result = conn.execute(_TABLE.update().where(_TABLE.c.id == outbox_id, _expired(now))
                              .values(status=OutboxStatus.PENDING.value, lease_until=now + ENQUEUE_LEASE))
    return bool(result.rowcount == 1)


def due_now(engine: Engine, tenant: str, now: datetime, *, every_pending: bool = False) -> None:
    """The tenant's pending rows waiting out a backoff become due now ("Sync now"); with
    `every_pending`, all its pending rows (a reconnect resumes the rows it parked).

    Only waits longer than an enqueue lease are brought forward: a shorter lease may be a queued
    job's (a fresh or swept row), and making it due would queue the same row again on every
    click; a backoff that short comes due by itself within the sweeper's next rounds."""
    where = [_TABLE.c.tenant_id == tenant, _TABLE.c.status == OutboxStatus.PENDING.value]
    if not every_pending:
        where.append(_TABLE.c.lease_until > now + ENQUEUE_LEASE)
    with engine.begin() as conn:
        conn.execute(_TABLE.update().where(*where).values(lease_until=now - timedelta(seconds=1)))


def claimable(engine: Engine, outbox_id: int, now: datetime) -> bool:
    """Whether `claim` could take the row now: one read instead of a write for the jobs of rows a
    batch leader took, or that are settled already (the claim itself stays the judge)."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(_TABLE.c.status, _TABLE.c.lease_until).where(_TABLE.c.id == outbox_id)).first()
    if found is None:
        return False
    status, lease_until = found
    if status == OutboxStatus.PENDING.value:
        return True
    return status == OutboxStatus.PROCESSING.value and lease_until is not None and lease_until < now


def latest_for(engine: Engine, tenant: str, crm_id: str, event_types: Sequence[str]) -> OutboxEvent | None:
    """The newest row of a record (its subject id and one of its event types), or None."""
    with session(engine) as db:
        return db.exec(
            select(OutboxEvent)
            .where(OutboxEvent.tenant_id == tenant, OutboxEvent.subject_id == crm_id,
                   col(OutboxEvent.event_type).in_(event_types))
            .order_by(col(OutboxEvent.id).desc())
        ).first()


def reopen(engine: Engine, row: OutboxEvent, now: datetime) -> None:
    """Retry: the row is pending again with its attempts reset and a fresh enqueue lease (same row,
    same requestid, so a write that did reach QBO is replayed, not repeated)."""
    with session(engine) as db:
        fresh = db.get(OutboxEvent, row.id)
        if fresh is None:
            return
        fresh.status = OutboxStatus.PENDING.value
        fresh.attempts = 0
        fresh.last_error = None
        fresh.lease_until = now + ENQUEUE_LEASE
        fresh.updated_at = now
        db.add(fresh)
        db.commit()


def first_send_subjects(engine: Engine, tenant: str, exclude_id: int | None, connected_at: datetime | None,
                        limit: int) -> list[str]:
    """The subject ids (invoice ids) of up to `limit` waiting first sends, oldest first."""
    query = _first_sends(tenant, exclude_id, connected_at).add_columns(_TABLE.c.subject_id).limit(limit)
    with engine.connect() as conn:
        return [str(subject) for _id, subject in conn.execute(query).all()]


IN_CHUNK = 500  # keys per IN (...) query


def insert(engine: Engine, row: OutboxEvent) -> tuple[int, bool]:
    """Store a new row once per (tenant, event key): (its id, True), or (the stored row's id, False)."""
    with session(engine) as db:
        db.add(row)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            existing = db.exec(
                select(OutboxEvent).where(OutboxEvent.tenant_id == row.tenant_id, OutboxEvent.event_key == row.event_key)
            ).one()
            assert existing.id is not None
            return existing.id, False
    assert row.id is not None
    return row.id, True


def insert_many(engine: Engine, tenant: str, rows: list[dict[str, Any]]) -> tuple[dict[str, int], set[str]]:
    """Store many rows (distinct event keys) in one transaction, once per key: returns the id of
    every key, and the keys whose rows were made now."""
    with engine.begin() as conn:
        created = _insert_new(conn, rows)
        known = _existing(conn, tenant, [str(r["event_key"]) for r in rows if r["event_key"] not in created])
    return {**known, **created}, set(created)


def _insert_new(conn: DbConnection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert `rows`, skipping keys already stored (ON CONFLICT DO NOTHING, so a concurrent
    publisher of the same key never fails the batch); returns {event_key: id} of the rows made.
    One cached statement, executed for many rows (SQLAlchemy batches them into multi-row INSERTs)."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"publish_many supports SQLite and PostgreSQL, not {dialect}")
    insert: Any = postgresql.insert(_TABLE) if dialect == "postgresql" else sqlite.insert(_TABLE)
    statement = insert.on_conflict_do_nothing(index_elements=["tenant_id", "event_key"]).returning(
        _TABLE.c.id, _TABLE.c.event_key)
    return {str(key): int(row_id) for row_id, key in conn.execute(statement, rows)}


def _existing(conn: DbConnection, tenant: str, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(keys), IN_CHUNK):
        rows = conn.execute(
            sa.select(_TABLE.c.event_key, _TABLE.c.id)
            .where(_TABLE.c.tenant_id == tenant, _TABLE.c.event_key.in_(keys[start:start + IN_CHUNK]))
        )
        found.update({str(key): int(row_id) for key, row_id in rows})
    return found
