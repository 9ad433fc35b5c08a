"""rq task entry points. Each takes ids only and runs inside the host app's context, which the
worker command pushes before it starts."""

from __future__ import annotations

import sqlalchemy as sa

from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.runtime.services import Services, current
from crm_qbo_plugin.store.tables import OutboxEvent, OutboxStatus
from crm_qbo_plugin.store.types import utcnow


def process_outbox(outbox_id: int) -> str:
    if not isinstance(outbox_id, int) or isinstance(outbox_id, bool):
        raise TypeError("process_outbox takes an outbox row id")
    state = current()
    if not claimable(state, outbox_id):
        return "not-claimed"
    return process(state, outbox_id)


def claimable(state: Services, outbox_id: int) -> bool:
    """Whether the processor's claim could take the row now: one read instead of a write for the
    jobs of rows a batch leader took, or that are settled already. (The claim itself stays the
    judge: a row claimable here may still be taken by someone else first.)"""
    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(table.c.status, table.c.lease_until).where(table.c.id == outbox_id)).first()
    if row is None:
        return False
    status, lease_until = row
    if status == OutboxStatus.PENDING.value:
        return True
    return status == OutboxStatus.PROCESSING.value and lease_until is not None and lease_until < utcnow()
