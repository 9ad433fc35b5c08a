"""The inbox: every QBO change notice (webhook or CDC) recorded exactly once.

A notice is unique on realm + entity + id + change stamp. Recording is one transaction of
``INSERT … ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL alike), so a duplicate delivery or a
replay only bumps ``deliveries`` of the row it repeats and is never applied again. Each notice is
routed to the tenant whose connection holds its realm *now*; a realm nobody holds, or an entity the
plugin does not know, is kept as a dead letter with the reason, and never blocks later notices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as DbConnection

from crm_qbo_plugin.inbound.notices import Notice
from crm_qbo_plugin.store.tables import Connection, InboxNotice, InboxStatus
from crm_qbo_plugin.store.types import utcnow

INBOX = InboxNotice.__table__  # type: ignore[attr-defined]
CONNECTIONS = Connection.__table__  # type: ignore[attr-defined]
_KEY = ("realm_id", "entity", "entity_id", "change_stamp")
_CHUNK = 500
NO_TENANT = "no location is connected to this QuickBooks company"

Key = tuple[str, str, str, str]


@dataclass
class Recorded:
    """What recording a batch of notices did."""

    new: dict[Key, int] = field(default_factory=dict)  # key -> inbox id of rows created now
    duplicates: int = 0
    dead: int = 0
    pending_realms: set[str] = field(default_factory=set)  # realms with new work to apply

    @property
    def recorded(self) -> int:
        return len(self.new)


def tenants_for(conn: DbConnection, realms: Iterable[str]) -> dict[str, str]:
    """realm -> tenant for realms a connection holds now (connected or needing a reconnect)."""
    wanted = sorted(set(realms))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(CONNECTIONS.c.realm_id, CONNECTIONS.c.tenant_id).where(CONNECTIONS.c.realm_id.in_(wanted))
    )
    return {str(realm): str(tenant) for realm, tenant in rows}


def _insert(conn: DbConnection) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(INBOX)
    if dialect == "sqlite":
        return sqlite.insert(INBOX)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


def record(conn: DbConnection, notices: Sequence[Notice], source: str, now: datetime | None = None,
           tenants: dict[str, str] | None = None) -> Recorded:
    """Record `notices` inside the caller's transaction; see the module docstring."""
    now = now or utcnow()
    result = Recorded()
    if not notices:
        return result
    tenants = tenants if tenants is not None else tenants_for(conn, (n.realm_id for n in notices))
    counts = Counter(n.key for n in notices)
    rows: list[dict[str, Any]] = []
    seen: set[Key] = set()
    for notice in notices:
        if notice.key in seen:
            continue
        seen.add(notice.key)
        tenant = tenants.get(notice.realm_id)
        status, reason = InboxStatus.PENDING.value, None
        if notice.problem:
            status, reason = InboxStatus.DEAD.value, notice.problem
        elif tenant is None:
            status, reason = InboxStatus.DEAD.value, NO_TENANT
        elif notice.ignored:
            status, reason = InboxStatus.SKIPPED.value, notice.ignored
        rows.append({
            "realm_id": notice.realm_id, "tenant_id": tenant, "entity": notice.entity,
            "entity_id": notice.entity_id, "operation": notice.operation, "change_stamp": notice.change_stamp,
            "event_id": notice.event_id, "data": dict(notice.data), "source": source, "status": status,
            "reason": reason, "deliveries": counts[notice.key], "created_at": now, "updated_at": now,
        })
    columns = [INBOX.c[name] for name in _KEY]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        statement = _insert(conn).values(chunk).on_conflict_do_nothing(index_elements=columns)
        returned = conn.execute(statement.returning(INBOX.c.id, *columns))
        for row_id, realm, entity, entity_id, stamp in returned:
            result.new[(realm, entity, entity_id, stamp)] = int(row_id)
    by_key: dict[Key, dict[str, Any]] = {
        (r["realm_id"], r["entity"], r["entity_id"], r["change_stamp"]): r for r in rows
    }
    for key, row in by_key.items():
        if key in result.new:
            if row["status"] == InboxStatus.DEAD.value:
                result.dead += 1
            elif row["status"] == InboxStatus.PENDING.value:
                result.pending_realms.add(key[0])
            result.duplicates += counts[key] - 1
            continue
        result.duplicates += counts[key]
        conn.execute(
            INBOX.update()
            .where(*(INBOX.c[name] == value for name, value in zip(_KEY, key, strict=True)))
            .values(deliveries=INBOX.c.deliveries + counts[key], updated_at=now)
        )
    return result


def touch_webhook(conn: DbConnection, realms: Iterable[str], now: datetime) -> None:
    """Connection.last_webhook_at = now for the connections holding these realms."""
    wanted = sorted(set(realms))
    if wanted:
        conn.execute(CONNECTIONS.update().where(CONNECTIONS.c.realm_id.in_(wanted)).values(last_webhook_at=now))


def pending_ids(conn: DbConnection, realm_id: str, limit: int = 200, after: int = 0) -> list[int]:
    """Ids of the realm's pending notices in arrival order (the per-realm apply order)."""
    query = (
        sa.select(INBOX.c.id)
        .where(INBOX.c.realm_id == realm_id, INBOX.c.status == InboxStatus.PENDING.value, INBOX.c.id > after)
        .order_by(INBOX.c.id)
        .limit(limit)
    )
    return [int(i) for i in conn.execute(query).scalars()]


def has_pending(conn: DbConnection, realm_id: str) -> bool:
    return bool(pending_ids(conn, realm_id, limit=1))


def realms_with_pending(conn: DbConnection) -> list[str]:
    query = sa.select(INBOX.c.realm_id).where(INBOX.c.status == InboxStatus.PENDING.value).distinct()
    return [str(r) for r in conn.execute(query).scalars()]


def finish(conn: DbConnection, notice_id: int, status: InboxStatus, reason: str | None, now: datetime | None = None) -> None:
    conn.execute(
        INBOX.update()
        .where(INBOX.c.id == notice_id, INBOX.c.status == InboxStatus.PENDING.value)
        .values(status=status.value, reason=reason, updated_at=now or utcnow())
    )
