"""Cursor rows: a tenant's resumable positions (CDC watermark, import checkpoints)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine
from sqlmodel import Session

from crm_qbo_plugin.qbo import parse_timestamp
from crm_qbo_plugin.store.tables import Cursor
from crm_qbo_plugin.store.types import utcnow

CURSORS = Cursor.__table__  # type: ignore[attr-defined]


def read(conn: DbConnection, tenant: str, stream: str) -> str | None:
    value = conn.execute(
        sa.select(CURSORS.c.value).where(CURSORS.c.tenant_id == tenant, CURSORS.c.stream == stream)
    ).scalar()
    return str(value) if value is not None else None


def write(conn: DbConnection, tenant: str, stream: str, value: str) -> None:
    """Set the cursor inside the caller's transaction (so it commits with the work it records)."""
    now = utcnow()
    updated = conn.execute(
        CURSORS.update().where(CURSORS.c.tenant_id == tenant, CURSORS.c.stream == stream)
        .values(value=value, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(CURSORS.insert().values(tenant_id=tenant, stream=stream, value=value, updated_at=now))


def clear(conn: DbConnection | Session, tenant: str) -> None:
    """Forget every position of the tenant, inside the caller's transaction."""
    conn.execute(CURSORS.delete().where(CURSORS.c.tenant_id == tenant))


def load(engine: Engine, tenant: str, stream: str) -> str | None:
    with engine.connect() as conn:
        return read(conn, tenant, stream)


def load_time(engine: Engine, tenant: str, stream: str) -> datetime | None:
    value = load(engine, tenant, stream)
    return parse_timestamp(value) if value else None


def save(engine: Engine, tenant: str, stream: str, value: str | datetime) -> None:
    text = value.isoformat() if isinstance(value, datetime) else value
    with engine.begin() as conn:
        write(conn, tenant, stream, text)
