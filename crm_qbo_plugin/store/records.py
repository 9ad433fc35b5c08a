"""Read-side queries for the card: records by status, recent sync runs. Always scoped by tenant."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col, func, select

from crm_qbo_plugin.store.db import HasEngine, session
from crm_qbo_plugin.store.tables import Link, LinkKind, SyncRun


def record_counts(state: HasEngine, tenant: str) -> dict[str, int]:
    with session(state.engine) as db:
        rows = db.exec(
            select(Link.status, func.count()).where(Link.tenant_id == tenant, Link.kind != LinkKind.ITEM.value).group_by(Link.status)
        ).all()
    return {status: int(count) for status, count in rows}


def list_records(state: HasEngine, tenant: str, *, status: str | None = None, kind: str | None = None,
                 limit: int = 50, offset: int = 0) -> list[Link]:
    query = select(Link).where(Link.tenant_id == tenant, Link.kind != LinkKind.ITEM.value)
    if status:
        query = query.where(Link.status == status)
    if kind:
        query = query.where(Link.kind == kind)
    query = query.order_by(sa.desc(col(Link.updated_at)), sa.desc(col(Link.id))).offset(offset).limit(limit)
    with session(state.engine) as db:
        return list(db.exec(query))


def recent_runs(state: HasEngine, tenant: str, limit: int = 20) -> list[SyncRun]:
    with session(state.engine) as db:
        return list(db.exec(
            select(SyncRun).where(SyncRun.tenant_id == tenant)
            .order_by(sa.desc(col(SyncRun.started_at)), sa.desc(col(SyncRun.id))).limit(limit)
        ))
