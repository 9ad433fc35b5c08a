"""Xero's daily budget of calls as the card shows it: the limiter's last `X-DayLimit-Remaining`
for the connected organisation, in words once it runs low."""

from __future__ import annotations

from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.types import Provider
from crm_qbo_plugin.web import wording


def day_budget_warning(state: PluginState, conn: Connection | None) -> str | None:
    """None for QuickBooks (its limits are per minute only), a connection not connected, or a
    budget with plenty left."""
    limiter = state.xero_limiter
    if (conn is None or conn.provider != Provider.XERO.value or conn.realm_id is None or limiter is None
            or conn.status != ConnectionStatus.CONNECTED.value):
        return None
    return wording.day_budget_warning(limiter.day_remaining(conn.realm_id), limiter.day_frees_at(conn.realm_id))
