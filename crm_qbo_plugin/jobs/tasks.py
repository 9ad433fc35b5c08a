"""rq task entry points. Each takes ids only and runs inside the host app's context, which the
worker command pushes before it starts."""

from __future__ import annotations

from crm_qbo_plugin.outbound.processor import process
from crm_qbo_plugin.state import get_state


def process_outbox(outbox_id: int) -> str:
    if not isinstance(outbox_id, int) or isinstance(outbox_id, bool):
        raise TypeError("process_outbox takes an outbox row id")
    return process(get_state(), outbox_id)
