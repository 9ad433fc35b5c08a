"""rq task entry points. Each takes ids only and runs inside the host app's context, which the
worker command pushes before it starts."""

from __future__ import annotations

from crm_qbo_plugin import logs
from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.runtime.services import Services, current
from crm_qbo_plugin.store import outbox
from crm_qbo_plugin.store.types import utcnow


def process_outbox(outbox_id: int) -> str:
    if not isinstance(outbox_id, int) or isinstance(outbox_id, bool):
        raise TypeError("process_outbox takes an outbox row id")
    state = current()
    if not claimable(state, outbox_id):
        return "not-claimed"
    with logs.bind():  # the processor adds the row's tenant and realm once it has claimed it
        return process(state, outbox_id)


def claimable(state: Services, outbox_id: int) -> bool:
    """Whether the processor's claim could take the row now (store/outbox.py: `claimable`)."""
    return outbox.claimable(state.engine, outbox_id, utcnow())
