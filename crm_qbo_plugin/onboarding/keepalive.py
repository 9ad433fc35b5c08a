"""Keep idle connections alive: QBO refresh tokens expire 100 days after their last use, Xero's 60,
and a business that sells nothing for a season must not come back to a dead connection."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_qbo_plugin.qbo import QboError, ReconnectRequired
from crm_qbo_plugin.runtime.clients import token_manager, xero_token_manager
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.runtime.status import mark_needs_reconnect, resume_readable
from crm_qbo_plugin.store.connections import connected
from crm_qbo_plugin.store.token_store import DbTokenStore
from crm_qbo_plugin.store.types import Provider, utcnow
from crm_qbo_plugin.xero import ReconnectRequired as XeroReconnectRequired
from crm_qbo_plugin.xero import XeroError

log = logging.getLogger(__name__)

# Refresh when the refresh token has less than this left: QuickBooks' have 100 days when fresh, so a
# daily scheduler pass keeps every connection at least ~70 days from expiry; Xero's have 60 days
# (rotated on each refresh), so one is refreshed once it is a month old.
@dataclass(frozen=True)
class Keepalive:
    when_left: timedelta
    refresh: Callable[[Services, str, str], object]  # (state, realm, current access token)
    reconnect: tuple[type[Exception], ...]
    passing: tuple[type[Exception], ...]


def _refresh_quickbooks(state: Services, realm: str, access_token: str) -> object:
    # Treating the current access token as refused forces one (single-flight) refresh, which also
    # rotates and saves the refresh token; a concurrent refresh counts too.
    return token_manager(state, realm).refresh_after_rejection(access_token)


def _refresh_xero(state: Services, org: str, access_token: str) -> object:
    return xero_token_manager(state, org).refresh_after_rejection(access_token)


KEEPALIVE = {
    Provider.QUICKBOOKS.value: Keepalive(timedelta(days=70), _refresh_quickbooks, (ReconnectRequired,), (QboError,)),
    Provider.XERO.value: Keepalive(timedelta(days=30), _refresh_xero, (XeroReconnectRequired,), (XeroError,)),
}


def refresh_idle_connections(state: Services, now: datetime | None = None) -> int:
    """Refresh the tokens of connections whose refresh token is getting old; returns how many."""
    now = now or utcnow()
    resume_readable(state)  # tokens parked as unreadable come back once their key is restored
    refreshed = 0
    for provider, keep in KEEPALIVE.items():
        for row in connected(state.engine, provider):
            if row.realm_id is None or row.refresh_expires_at is None or row.refresh_expires_at - now > keep.when_left:
                continue
            try:
                stored = DbTokenStore(state.engine, state.cipher).load(row.realm_id)
                if stored is None:
                    continue
                keep.refresh(state, row.realm_id, stored.access_token)
                refreshed += 1
            except keep.reconnect:
                mark_needs_reconnect(state, row.realm_id)
            except keep.passing as exc:  # transient: the next pass tries again, long before expiry
                log.warning("connection.keepalive_failed provider=%s error=%s retry=next_pass", provider,
                            getattr(exc, "code", None) or type(exc).__name__)
    return refreshed
