"""Moving a connection to "needs reconnect" when Intuit refuses its refresh token, or when the
stored tokens cannot be decrypted any more."""

from __future__ import annotations

import logging

from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.connections import connection_for, park, unpark
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.token_store import tokens_readable

log = logging.getLogger(__name__)

# What the card shows when the tokens cannot be decrypted (the operator's fix is in the log line).
UNREADABLE = ("The stored QuickBooks authorisation cannot be read (this server's encryption keys changed). "
              "Syncing is paused and nothing is lost: reconnect to QuickBooks to resume.")


# What the card shows when Intuit refused the saved authorisation (a refresh token revoked or expired).
REFUSED = "QuickBooks refused the saved authorisation; reconnect to resume"


def mark_needs_reconnect(state: Services, realm_id: str, reason: str = REFUSED) -> None:
    """Intuit refused our refresh token, or our tokens cannot be decrypted: stop this tenant's work
    until a person reconnects. Undecryptable tokens always get the UNREADABLE reason, whatever
    error led here, so the card says what actually happened."""
    set_reason = park(state.engine, realm_id, lambda row: reason if tokens_readable(row, state.cipher) else UNREADABLE)
    if set_reason is None:
        return
    if set_reason == UNREADABLE:
        log.error("connection.tokens_unreadable realm_id=%s fix=%s", realm_id,
                  "restore the CRM_QBO_SECRET_KEYS key that encrypted them, or reconnect")
    else:
        log.warning("connection.needs_reconnect realm_id=%s reason=%r", realm_id, reason)


def check_authorisation(state: Services, row: Connection | None) -> Connection | None:
    """`row`, moved to needs-reconnect first if it says connected but its tokens cannot be decrypted
    (the status API and the card must not show a connection no job can use), or back to connected
    if it was parked only for that and they decrypt again."""
    if row is None or row.realm_id is None:
        return row
    if row.status == ConnectionStatus.CONNECTED.value and not tokens_readable(row, state.cipher):
        mark_needs_reconnect(state, row.realm_id, UNREADABLE)
    elif _parked_unreadable(row) and tokens_readable(row, state.cipher):
        resume_readable(state, row.tenant_id)
    else:
        return row
    return connection_for(state.engine, row.tenant_id)


def _parked_unreadable(row: Connection) -> bool:
    return row.status == ConnectionStatus.NEEDS_RECONNECT.value and row.last_error == UNREADABLE


def resume_readable(state: Services, tenant: str | None = None) -> int:
    """Connections (all, or `tenant`'s) parked only because their tokens could not be decrypted,
    whose tokens decrypt again (the operator put the old key back in CRM_QBO_SECRET_KEYS): connected
    again, so nobody has to reconnect. Their parked outbox rows go out when their lease ends (the
    sweeper takes them)."""
    resumed = unpark(state.engine, UNREADABLE, lambda row: tokens_readable(row, state.cipher), tenant)
    if resumed:
        log.info("connection.resumed count=%d reason=tokens_readable_again", resumed)
    return resumed
