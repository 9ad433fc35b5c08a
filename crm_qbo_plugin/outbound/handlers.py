"""The push handler for each host event type: the processor calls HANDLERS[event_type](state, row,
connection) once the gate has passed. Handlers raise processor.Skip, RetryLater or a QboError."""

from __future__ import annotations

from crm_qbo_plugin.outbound.processor import Handler

HANDLERS: dict[str, Handler] = {}
