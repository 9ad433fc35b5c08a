"""Retention: delete settled rows older than CRM_QBO_RETENTION_DAYS, so the tables stop growing.

Only what no exactly-once promise or person still needs goes:

- inbox notices that were applied, skipped or dead-lettered, untouched for the retention. A notice
  is deduplicated by its row; Intuit redelivers for hours, CDC overlaps its polls by minutes, and a
  redelivery bumps ``updated_at``, so a row is never pruned while its notice can still come back.
  Pending notices stay until the drain settles them.
- outbox rows that are done or skipped — never pending, processing or failed ones (a failed row is
  a person's to retry) — and never the newest row of a record and event type: the card's Retry and
  Ignore work on it. A host re-publishing an event key after its row went is pushed again, which
  the record's link (never pruned) turns into an update of the same QBO entity, not a duplicate.
- OAuth states used or expired before the cutoff: a consumed state must match an unused, unexpired
  row, so a deleted state is as invalid as a used one (single use holds).
- finished sync runs, except each tenant's newest of each kind (the card shows it).

The write ledger and automation claims are kept: they are what stops echoes and second triggers.
Rows go in small batches, one short transaction each, so webhooks and workers are not held up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_qbo_plugin.store.tables import (
    InboxNotice,
    InboxStatus,
    OAuthState,
    OutboxEvent,
    OutboxStatus,
    RunStatus,
    SyncRun,
)
from crm_qbo_plugin.store.types import utcnow

BATCH = 2000

INBOX: Any = InboxNotice.__table__  # type: ignore[attr-defined]
OUTBOX: Any = OutboxEvent.__table__  # type: ignore[attr-defined]
STATES: Any = OAuthState.__table__  # type: ignore[attr-defined]
RUNS: Any = SyncRun.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Pruned:
    inbox: int
    outbox: int
    oauth_states: int
    sync_runs: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _prunable(cutoff: datetime) -> dict[str, tuple[Any, Any]]:
    """table name -> (table, the condition a row must meet to be deleted)."""
    newest_outbox = sa.select(sa.func.max(OUTBOX.c.id)).group_by(
        OUTBOX.c.tenant_id, OUTBOX.c.subject_id, OUTBOX.c.event_type)
    newest_runs = sa.select(sa.func.max(RUNS.c.id)).group_by(RUNS.c.tenant_id, RUNS.c.kind)
    return {
        "inbox": (INBOX, sa.and_(
            INBOX.c.status.in_([InboxStatus.APPLIED.value, InboxStatus.SKIPPED.value, InboxStatus.DEAD.value]),
            INBOX.c.updated_at < cutoff)),
        "outbox": (OUTBOX, sa.and_(
            OUTBOX.c.status.in_([OutboxStatus.DONE.value, OutboxStatus.SKIPPED.value]),
            OUTBOX.c.updated_at < cutoff,
            OUTBOX.c.id.not_in(newest_outbox.scalar_subquery()))),
        "oauth_states": (STATES, sa.or_(
            STATES.c.used_at < cutoff,
            sa.and_(STATES.c.used_at.is_(None), STATES.c.expires_at < cutoff))),
        "sync_runs": (RUNS, sa.and_(
            RUNS.c.status != RunStatus.RUNNING.value,
            sa.func.coalesce(RUNS.c.finished_at, RUNS.c.started_at) < cutoff,
            RUNS.c.id.not_in(newest_runs.scalar_subquery()))),
    }


def _delete_in_batches(engine: Engine, table: Any, condition: Any) -> int:
    deleted = 0
    while True:
        with engine.begin() as conn:
            ids = [row_id for (row_id,) in conn.execute(sa.select(table.c.id).where(condition).limit(BATCH))]
            if ids:
                conn.execute(table.delete().where(table.c.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted


def prune_settled(engine: Engine, retention_days: int, now: datetime | None = None) -> Pruned:
    """Delete the settled rows older than `retention_days` (see the module docstring); returns counts."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    counts = {name: _delete_in_batches(engine, table, condition)
              for name, (table, condition) in _prunable(cutoff).items()}
    return Pruned(**counts)
