"""Keep idle connections alive: QBO refresh tokens expire 100 days after their last use, and a
business that sells nothing for a season must not come back to a dead connection."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from crm_qbo_plugin.qbo import QboError, ReconnectRequired
from crm_qbo_plugin.runtime.clients import token_manager
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.runtime.status import mark_needs_reconnect, resume_readable
from crm_qbo_plugin.store.connections import connected
from crm_qbo_plugin.store.token_store import DbTokenStore
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

# Refresh when the refresh token has less than this left (it has 100 days when fresh): a daily
# scheduler pass then keeps every connection at least ~70 days from expiry.
REFRESH_WHEN_LEFT = timedelta(days=70)


def refresh_idle_connections(state: Services, now: datetime | None = None) -> int:
    """Refresh the tokens of connections whose refresh token is getting old; returns how many."""
    now = now or utcnow()
    resume_readable(state)  # tokens parked as unreadable come back once their key is restored
    rows = connected(state.engine)
    refreshed = 0
    for row in rows:
        if row.realm_id is None or row.refresh_expires_at is None or row.refresh_expires_at - now > REFRESH_WHEN_LEFT:
            continue
        try:
            stored = DbTokenStore(state.engine, state.cipher).load(row.realm_id)
            if stored is None:
                continue
            # Treating the current access token as refused forces one (single-flight) refresh,
            # which also rotates and saves the refresh token; a concurrent refresh counts too.
            token_manager(state, row.realm_id).refresh_after_rejection(stored.access_token)
            refreshed += 1
        except ReconnectRequired:
            mark_needs_reconnect(state, row.realm_id)
        except QboError as exc:  # transient: the next pass tries again, long before expiry
            log.warning("connection.keepalive_failed error=%s retry=next_pass", exc.code or type(exc).__name__)
    return refreshed
