"""What the plugin did, both directions, for the card's history and health header.

Outbound work is read from the outbox (each row pushed or failed is one change sent), inbound work
from the inbox (each QuickBooks change applied, by webhook or poll) and the import runs; all are grouped into short windows so the card can say "Sent 2 invoices and 1
payment to QuickBooks · Received 1 change" once per window instead of once per event."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import (
    InboxNotice,
    InboxStatus,
    OutboxEvent,
    OutboxStatus,
    RunStatus,
    SyncRun,
)

WINDOW = timedelta(minutes=5)
SCAN = 1000  # newest outbox rows and runs read per request: plenty for the card's recent history


@dataclass(frozen=True)
class Failure:
    kind: str  # host kind: contact | invoice | payment
    crm_id: str
    error: str


@dataclass
class Activity:
    at: datetime  # the window's latest moment
    sent: Counter[str] = field(default_factory=Counter)  # host kind -> changes sent
    received: int = 0
    imported: int = 0
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # inbound run errors


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window(moment: datetime) -> datetime:
    epoch = int(_aware(moment).timestamp())
    return datetime.fromtimestamp(epoch - epoch % int(WINDOW.total_seconds()), UTC)


def recent_activity(engine: Engine, tenant: str, limit: int = 20) -> list[Activity]:
    """The newest `limit` windows with something in them, newest first."""
    with session(engine) as db:
        pushed = list(db.exec(
            select(OutboxEvent).where(OutboxEvent.tenant_id == tenant,
                                      col(OutboxEvent.status).in_((OutboxStatus.DONE.value, OutboxStatus.FAILED.value)))
            .order_by(sa.desc(col(OutboxEvent.updated_at)), sa.desc(col(OutboxEvent.id))).limit(SCAN)))
        applied = list(db.exec(
            select(InboxNotice.updated_at).where(InboxNotice.tenant_id == tenant, InboxNotice.status == InboxStatus.APPLIED.value,
                                                 InboxNotice.source != "import")
            .order_by(sa.desc(col(InboxNotice.updated_at))).limit(SCAN)))
        runs = list(db.exec(
            select(SyncRun).where(SyncRun.tenant_id == tenant, SyncRun.status != RunStatus.RUNNING.value)
            .order_by(sa.desc(col(SyncRun.started_at)), sa.desc(col(SyncRun.id))).limit(SCAN)))
    windows: dict[datetime, Activity] = {}

    def at(moment: datetime) -> Activity:
        moment = _aware(moment)
        entry = windows.setdefault(_window(moment), Activity(at=moment))
        entry.at = max(entry.at, moment)
        return entry

    for row in pushed:
        entry = at(row.updated_at)
        kind = row.event_type.split(".", 1)[0]
        if row.status == OutboxStatus.DONE.value:
            entry.sent[kind] += 1
        else:
            entry.failures.append(Failure(kind=kind, crm_id=row.subject_id, error=row.last_error or "QuickBooks refused it"))
    for moment in applied:
        at(moment).received += 1
    for run in runs:
        counts = run.counts or {}
        imported = int(counts.get("customers_done") or 0) + int(counts.get("invoices_done") or 0) if run.kind == "import" else 0
        if not (imported or run.errors):
            continue  # a poll's changes are counted from the inbox; one that found nothing is not history
        entry = at(run.finished_at or run.started_at)
        entry.imported += imported
        entry.errors.extend(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in run.errors)
    return sorted(windows.values(), key=lambda a: a.at, reverse=True)[:limit]


def last_synced_at(engine: Engine, tenant: str) -> datetime | None:
    """When the plugin last finished sync work: a change pushed or a run (poll, import) completed."""
    with session(engine) as db:
        pushed = db.exec(select(func.max(OutboxEvent.updated_at)).where(
            OutboxEvent.tenant_id == tenant, OutboxEvent.status == OutboxStatus.DONE.value)).one()
        ran = db.exec(select(func.max(SyncRun.finished_at)).where(
            SyncRun.tenant_id == tenant, SyncRun.status == RunStatus.SUCCEEDED.value)).one()
    moments = [_aware(m) for m in (pushed, ran) if m is not None]
    return max(moments) if moments else None
