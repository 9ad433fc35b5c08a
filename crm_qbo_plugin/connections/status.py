"""Moving a connection to "needs reconnect" when Intuit refuses its refresh token."""

from __future__ import annotations

import logging

from sqlmodel import select

from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)


def mark_needs_reconnect(state: PluginState, realm_id: str, reason: str) -> None:
    """Intuit refused our refresh token: stop this tenant's work until a person reconnects."""
    with session(state.engine) as db:
        row = db.exec(select(Connection).where(Connection.realm_id == realm_id)).first()
        if row is None or row.status != ConnectionStatus.CONNECTED.value:
            return
        row.status = ConnectionStatus.NEEDS_RECONNECT.value
        row.last_error = reason
        row.updated_at = utcnow()
        db.add(row)
        db.commit()
    log.warning("QuickBooks connection needs reconnecting (%s)", reason)
