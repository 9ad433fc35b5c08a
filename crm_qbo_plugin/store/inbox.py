"""The inbox: every QBO change notice (webhook or CDC) recorded exactly once.

A notice is unique on realm + entity + id + change stamp. Recording is one transaction of
``INSERT … ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL alike), so a duplicate delivery or a
replay only bumps ``deliveries`` of the row it repeats and is never applied again. Each notice is
routed to the tenant whose connection holds its realm *now*; a realm nobody holds, or an entity the
plugin does not know, is kept as a dead letter with the reason, and never blocks later notices.
"""

from __future__ import annotations

import sqlite3
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from crm_qbo_plugin.qbo.notices import Notice
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, InboxNotice, InboxStatus
from crm_qbo_plugin.store.types import UtcDateTime, utcnow

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
    rows = conn.execute(_TENANTS, {"realms": wanted})
    return {str(realm): str(tenant) for realm, tenant in rows}


# Statements the webhook runs on every delivery, built once (values are bound parameters).
_TENANTS = sa.select(CONNECTIONS.c.realm_id, CONNECTIONS.c.tenant_id).where(
    CONNECTIONS.c.realm_id.in_(sa.bindparam("realms", expanding=True))
)
_TOUCH = (
    CONNECTIONS.update()
    .where(
        CONNECTIONS.c.realm_id.in_(sa.bindparam("realms", expanding=True)),
        sa.or_(CONNECTIONS.c.last_webhook_at.is_(None),
               CONNECTIONS.c.last_webhook_at < sa.bindparam("before", type_=UtcDateTime())),
    )
    .values(last_webhook_at=sa.bindparam("now", type_=UtcDateTime()))
)


@cache
def _insert(dialect: str) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id, key``: built once, so its compiled form is
    cached and reused by every webhook (rows are passed as parameters, never as literal VALUES)."""
    if dialect == "postgresql":
        insert: Any = postgresql.insert(INBOX)
    elif dialect == "sqlite":
        insert = sqlite.insert(INBOX)
    else:
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    columns = [INBOX.c[name] for name in _KEY]
    return insert.on_conflict_do_nothing(index_elements=columns).returning(INBOX.c.id, *columns)


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
    statement = _insert(conn.dialect.name)
    for start in range(0, len(rows), _CHUNK):
        returned = conn.execute(statement, rows[start:start + _CHUNK])
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


TOUCH_EVERY = timedelta(seconds=10)
_ZERO = timedelta(0)


def touch_webhook(conn: DbConnection, realms: Iterable[str], now: datetime) -> None:
    """Connection.last_webhook_at = now for the connections holding these realms, to within
    TOUCH_EVERY: in a burst the connection row is not rewritten by every delivery."""
    wanted = sorted(set(realms))
    if wanted:
        conn.execute(_TOUCH, {"realms": wanted, "before": now - TOUCH_EVERY, "now": now})


def store_webhook(engine: Engine, notices: Sequence[Notice], now: datetime) -> Recorded:
    """Route, record and touch a webhook's notices in one transaction; committed when it returns.

    ``last_webhook_at`` is written when this process has not written it for the realm within
    TOUCH_EVERY: a burst does not rewrite the connection row (or run the statement) per delivery.
    """
    touched = _TOUCHED.setdefault(engine, {})
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            result, realms = _store_webhook(conn, notices, now, touched)
        touched.update(dict.fromkeys(realms, now))
        return result
    with engine.connect() as conn, _fast_lock_waits(conn):
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                with conn.begin():
                    result, realms = _store_webhook(conn, notices, now, touched)
                touched.update(dict.fromkeys(realms, now))
                return result
            except OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(LOCK_POLL_SECONDS)


# engine -> realm -> when this process last wrote the realm's last_webhook_at
_TOUCHED: weakref.WeakKeyDictionary[Engine, dict[str, datetime]] = weakref.WeakKeyDictionary()


def _store_webhook(conn: DbConnection, notices: Sequence[Notice], now: datetime,
                   touched: dict[str, datetime]) -> tuple[Recorded, list[str]]:
    tenants = tenants_for(conn, (n.realm_id for n in notices))
    result = record(conn, notices, "webhook", now, tenants)
    due = [realm for realm in tenants if (last := touched.get(realm)) is None or not _ZERO <= now - last < TOUCH_EVERY]
    touch_webhook(conn, due, now)
    return result, due


# SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100… ms between tries,
# so a webhook blocked by a worker's 5 ms commit could sleep 8 ms and one blocked for 30 ms, 33 ms;
# under load it adds tens of ms to the answer. The webhook's write instead retries every millisecond
# (with SQLite's handler off on its connection for that time, and no WAL checkpoint run by its
# commit: the workers' commits run them). Retrying is safe: a refused statement wrote nothing.
LOCK_WAIT_SECONDS = 10.0
LOCK_POLL_SECONDS = 0.001


@contextmanager
def _fast_lock_waits(conn: DbConnection) -> Iterator[None]:
    """SQLite's busy handler and autocheckpoint off on this connection while the block runs, then
    restored (the settings are per connection: nothing else in the process sees them off)."""
    pooled = conn.connection
    raw = pooled.driver_connection
    if not isinstance(raw, sqlite3.Connection):
        raise RuntimeError("fast lock waits need a sqlite3 connection")
    saved = pooled.info.get(_SAVED_PRAGMAS)
    if saved is None:  # read once per database connection
        timeout = raw.execute("PRAGMA busy_timeout").fetchone()[0]
        checkpoint = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        saved = pooled.info[_SAVED_PRAGMAS] = (int(timeout), int(checkpoint))
    raw.execute("PRAGMA busy_timeout = 0")
    raw.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        try:
            raw.execute(f"PRAGMA busy_timeout = {saved[0]:d}")
            raw.execute(f"PRAGMA wal_autocheckpoint = {saved[1]:d}")
        except sqlite3.Error:
            conn.invalidate()  # never hand a connection with the handler off back to the pool
            raise


_SAVED_PRAGMAS = "crm_qbo_saved_lock_pragmas"


def _busy(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(exc.orig)


def pending_ids(engine: Engine, realm_id: str, limit: int = 200, after: int = 0) -> list[int]:
    """Ids of the realm's pending notices in arrival order (the per-realm apply order)."""
    query = (
        sa.select(INBOX.c.id)
        .where(INBOX.c.realm_id == realm_id, INBOX.c.status == InboxStatus.PENDING.value, INBOX.c.id > after)
        .order_by(INBOX.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(query).scalars()]


def newest_pending_id(engine: Engine, realm_id: str) -> int:
    """The id of the realm's newest pending notice (0 when none): what had arrived by now."""
    query = sa.select(sa.func.max(INBOX.c.id)).where(INBOX.c.realm_id == realm_id,
                                                     INBOX.c.status == InboxStatus.PENDING.value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def has_pending(engine: Engine, realm_id: str) -> bool:
    return bool(pending_ids(engine, realm_id, limit=1))


def pending_notices(engine: Engine, notice_ids: Sequence[int]) -> list[Any]:
    """The still pending ones of `notice_ids`, in arrival order: id, tenant_id, entity, entity_id,
    operation, data."""
    with engine.connect() as conn:
        return list(conn.execute(
            sa.select(INBOX.c.id, INBOX.c.tenant_id, INBOX.c.entity, INBOX.c.entity_id, INBOX.c.operation,
                      INBOX.c.data)
            .where(INBOX.c.id.in_(notice_ids), INBOX.c.status == InboxStatus.PENDING.value)
            .order_by(INBOX.c.id)
        ).all())


def change_stamps(engine: Engine, notice_ids: Sequence[int]) -> dict[int, str]:
    """The change stamps of these notices, by id (for Xero: when the change happened, its event date)."""
    with engine.connect() as conn:
        return {int(i): str(stamp) for i, stamp in conn.execute(
            sa.select(INBOX.c.id, INBOX.c.change_stamp).where(INBOX.c.id.in_(notice_ids)))}


def pending_notice(engine: Engine, notice_id: int) -> InboxNotice | None:
    """The notice, if it is still pending."""
    with session(engine) as db:
        notice = db.get(InboxNotice, notice_id)
    return notice if notice is not None and notice.status == InboxStatus.PENDING.value else None


def record_polled(engine: Engine, notices: Sequence[Notice], source: str, realm_id: str, tenant: str) -> Recorded:
    """`record` for the changes a poll of one realm found, in a transaction of its own."""
    with engine.begin() as conn:
        return record(conn, notices, source, tenants={realm_id: tenant})


def dead_letter_pending(engine: Engine, realm_id: str, reason: str, limit: int = 10_000) -> int:
    """Dead-letter the realm's pending notices (up to `limit`), in one transaction; returns how many."""
    with engine.begin() as conn:
        query = (sa.select(INBOX.c.id)
                 .where(INBOX.c.realm_id == realm_id, INBOX.c.status == InboxStatus.PENDING.value)
                 .order_by(INBOX.c.id).limit(limit))
        ids = [int(i) for i in conn.execute(query).scalars()]
        for notice_id in ids:
            finish(conn, notice_id, InboxStatus.DEAD, reason)
    return len(ids)


def realms_with_pending(conn: DbConnection) -> list[str]:
    query = sa.select(INBOX.c.realm_id).where(INBOX.c.status == InboxStatus.PENDING.value).distinct()
    return [str(r) for r in conn.execute(query).scalars()]


def finish(conn: DbConnection, notice_id: int, status: InboxStatus, reason: str | None, now: datetime | None = None) -> None:
    conn.execute(
        INBOX.update()
        .where(INBOX.c.id == notice_id, INBOX.c.status == InboxStatus.PENDING.value)
        .values(status=status.value, reason=reason, updated_at=now or utcnow())
    )


_FINISH = (
    INBOX.update()
    .where(INBOX.c.id == sa.bindparam("notice_id"), INBOX.c.status == InboxStatus.PENDING.value)
    .values(status=sa.bindparam("new_status"), reason=sa.bindparam("new_reason"),
            updated_at=sa.bindparam("now", type_=UtcDateTime()))
)


def finish_many(conn: DbConnection, outcomes: Sequence[tuple[int, InboxStatus, str | None]],
                now: datetime | None = None) -> None:
    """`finish` for a batch's notices: one statement executed with many parameter sets."""
    if outcomes:
        at = now or utcnow()
        conn.execute(_FINISH, [{"notice_id": notice_id, "new_status": status.value, "new_reason": reason, "now": at}
                               for notice_id, status, reason in outcomes])


def settle(engine: Engine, notice_id: int, status: InboxStatus, reason: str | None) -> None:
    """`finish` one notice in a transaction of its own."""
    with engine.begin() as conn:
        finish(conn, notice_id, status, reason)


def revive_orphans(engine: Engine, realm_id: str, tenant: str, now: datetime | None = None) -> int:
    """Back on the same company: the realm's notices dead-lettered because no location held it
    (a webhook while disconnected, or one recorded before the disconnect and drained after it)
    are pending again for `tenant`; returns how many.

    The poll after a reconnect cannot stand in for them: it re-reads changes under the same keys,
    which the inbox takes as seen. Applying an old notice is safe: the drain re-reads the record
    and skips a version the CRM already holds."""
    with engine.begin() as conn:
        result = conn.execute(
            INBOX.update()
            .where(INBOX.c.realm_id == realm_id, INBOX.c.status == InboxStatus.DEAD.value, INBOX.c.reason == NO_TENANT)
            .values(status=InboxStatus.PENDING.value, tenant_id=tenant, reason=None, updated_at=now or utcnow())
        )
    return int(result.rowcount or 0)
