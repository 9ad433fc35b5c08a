"""Moving a connection to "needs reconnect" when Intuit refuses its refresh token, or when the
stored tokens cannot be decrypted any more."""

from __future__ import annotations

import logging

from sqlmodel import select

from crm_qbo_plugin.state import PluginState
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.token_store import tokens_readable
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

# What the card shows when the tokens cannot be decrypted (the operator's fix is in the log line).
UNREADABLE = ("The stored QuickBooks authorisation cannot be read (this server's encryption keys changed). "
              "Syncing is paused and nothing is lost: reconnect to QuickBooks to resume.")


def mark_needs_reconnect(state: PluginState, realm_id: str, reason: str) -> None:
    """Intuit refused our refresh token, or our tokens cannot be decrypted: stop this tenant's work
    until a person reconnects. Undecryptable tokens always get the UNREADABLE reason, whatever
    error led here, so the card says what actually happened."""
    with session(state.engine) as db:
        row = db.exec(select(Connection).where(Connection.realm_id == realm_id)).first()
        if row is None or row.status != ConnectionStatus.CONNECTED.value:
            return
        unreadable = not tokens_readable(row, state.cipher)
        row.status = ConnectionStatus.NEEDS_RECONNECT.value
        row.last_error = UNREADABLE if unreadable else reason
        row.updated_at = utcnow()
        db.add(row)
        db.commit()
    if unreadable:
        log.error("stored QuickBooks tokens cannot be decrypted with CRM_QBO_SECRET_KEYS; the connection "
                  "needs reconnecting (or restore the key that encrypted them, then reconnect)")
    else:
        log.warning("QuickBooks connection needs reconnecting (%s)", reason)


def check_authorisation(state: PluginState, row: Connection | None) -> Connection | None:
    """`row`, moved to needs-reconnect first if it says connected but its tokens cannot be decrypted
    (the status API and the card must not show a connection no job can use)."""
    if row is None or row.status != ConnectionStatus.CONNECTED.value or row.realm_id is None:
        return row
    if tokens_readable(row, state.cipher):
        return row
    mark_needs_reconnect(state, row.realm_id, UNREADABLE)
    with session(state.engine) as db:
        return db.exec(select(Connection).where(Connection.tenant_id == row.tenant_id)).first()
