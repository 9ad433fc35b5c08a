"""rq entry points for automations (ids only)."""

from __future__ import annotations

from crm_qbo_plugin import logs
from crm_qbo_plugin.automations.overdue import fire_overdue
from crm_qbo_plugin.runtime.services import current
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus

CHECK_OVERDUE = "crm_qbo_plugin.jobs.automation_tasks.check_overdue"


def check_overdue(connection_id: int) -> int:
    state = current()
    with session(state.engine) as db:
        conn = db.get(Connection, connection_id)
    if conn is None or conn.status != ConnectionStatus.CONNECTED.value:
        return 0
    with logs.bind(tenant=conn.tenant_id, realm=conn.realm_id):
        return fire_overdue(state, conn)
