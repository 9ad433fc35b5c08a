"""SyncRun rows for inbound work (polls, imports): what the card shows as recent syncs."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import RunStatus, SyncRun
from crm_qbo_plugin.store.types import utcnow

RUNS = SyncRun.__table__  # type: ignore[attr-defined]
MAX_ERRORS = 20


def start_run(engine: Engine, tenant: str, kind: str, counts: dict[str, Any] | None = None) -> SyncRun:
    with session(engine) as db:
        run = SyncRun(tenant_id=tenant, kind=kind, counts=dict(counts or {}))
        db.add(run)
        db.commit()
        return run


def open_run(engine: Engine, tenant: str, kind: str) -> SyncRun | None:
    """The tenant's newest run of `kind` still running (started and not finished), or None."""
    with session(engine) as db:
        return db.exec(
            select(SyncRun).where(SyncRun.tenant_id == tenant, SyncRun.kind == kind,
                                  SyncRun.status == RunStatus.RUNNING.value)
            .order_by(col(SyncRun.id).desc())
        ).first()


def pause_run(engine: Engine, run: SyncRun, errors: list[str]) -> SyncRun:
    """Keep the run open (so it is resumed) but record why it paused."""
    with session(engine) as db:
        row = db.get(SyncRun, run.id)
        assert row is not None
        row.errors = [e[:500] for e in errors]
        db.add(row)
        db.commit()
        return row


def save_counts(conn: DbConnection, run: SyncRun, counts: dict[str, Any]) -> None:
    """Progress inside the caller's transaction (committed with the page it counts)."""
    run.counts = dict(counts)
    conn.execute(RUNS.update().where(RUNS.c.id == run.id).values(counts=run.counts))


def finish_run(engine: Engine, run: SyncRun, counts: dict[str, Any], errors: list[str]) -> SyncRun:
    with session(engine) as db:
        row = db.get(SyncRun, run.id)
        assert row is not None
        row.counts = dict(counts)
        row.errors = [e[:500] for e in errors[:MAX_ERRORS]]
        row.status = (RunStatus.FAILED if errors else RunStatus.SUCCEEDED).value
        row.finished_at = utcnow()
        db.add(row)
        db.commit()
        return row
