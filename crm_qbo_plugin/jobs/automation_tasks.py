"""rq entry points for automations (ids only)."""

from __future__ import annotations

from crm_qbo_plugin import logs
from crm_qbo_plugin.automations.overdue import fire_overdue
from crm_qbo_plugin.runtime.services import current
from crm_qbo_plugin.store.connections import connection_by_id
from crm_qbo_plugin.store.tables import ConnectionStatus

CHECK_OVERDUE = "crm_qbo_plugin.jobs.automation_tasks.check_overdue"


def check_overdue(connection_id: int) -> int:
    state = current()
    conn = connection_by_id(state.engine, connection_id)
    if conn is None or conn.status != ConnectionStatus.CONNECTED.value:
        return 0
    with logs.bind(tenant=conn.tenant_id, realm=conn.realm_id):
        return fire_overdue(state, conn)
