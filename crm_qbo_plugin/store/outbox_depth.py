"""How many outbox rows wait to be pushed (for the queue-depth gauge)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus


def pending_outbox(engine: Engine) -> int:
    """Rows pending: new, waiting for a retry, or waiting for a reconnect."""
    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.status == OutboxStatus.PENDING.value)
        ).scalar_one())
