"""OAuth tokens for one Xero connection, refreshed single-flight across processes.

Xero rotates the refresh token on every refresh and accepts the previous one for 30 more minutes
only (xero-api.md §1, the grace for a lost response). ``TokenManager`` is
``apiclient.tokens.TokenManager``: it refreshes under a per-connection Redis lock, re-reads the
store after taking it (another worker may have refreshed), and saves the new pair before releasing
it; until that save returns, the old refresh token stays the stored one, so a crash between Xero's
answer and the save is healed by the grace period: the next refresh reuses the old token, Xero
answers again, and that answer is saved. Past the grace the old token gets ``invalid_grant`` →
``ReconnectRequired``. What is Xero's own is here: its token answer (``scope``, a 60-day refresh
token, none without ``offline_access``), its errors, the 2-minute margin (tokens live 30 minutes)
and the lock's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from crm_qbo_plugin.apiclient import tokens as base
from crm_qbo_plugin.apiclient.tokens import utcnow
from crm_qbo_plugin.xero.errors import ReconnectRequired, TransientError

__all__ = ["InMemoryTokenStore", "TokenManager", "TokenRefresher", "TokenStore", "Tokens"]

REFRESH_TOKEN_DAYS = 60  # an unused Xero refresh token dies after 60 days


@dataclass(frozen=True)
class Tokens(base.Tokens):
    """An access/refresh pair with aware expiry times and the granted scopes; secrets are kept out
    of ``repr``."""

    scope: tuple[str, ...] = ()

    @classmethod
    def from_token_response(cls, payload: Mapping[str, Any], *, now: datetime | None = None) -> Tokens:
        """Build from Xero's token answer (``expires_in`` 1800; a refresh token only with
        ``offline_access``, which the sync requires)."""
        issued = now or utcnow()
        access, refresh = payload.get("access_token"), payload.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise TransientError("the Xero token endpoint answered without an access token")
        if not isinstance(refresh, str) or not refresh:
            raise ReconnectRequired("Xero issued no refresh token: connect with offline_access")
        try:
            expires_in = int(payload.get("expires_in") or 1800)
        except (TypeError, ValueError):
            raise TransientError("the Xero token endpoint answered a bad expires_in") from None
        scope = payload.get("scope")
        return cls(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=issued + timedelta(seconds=expires_in),
            refresh_expires_at=issued + timedelta(days=REFRESH_TOKEN_DAYS),
            scope=tuple(scope.split()) if isinstance(scope, str) else (),
        )


class TokenStore(base.TokenStore[Tokens], Protocol):
    """Where a connection's tokens live; ``save`` must be durable when it returns."""


class InMemoryTokenStore(base.InMemoryTokenStore[Tokens]):
    """A thread-safe in-process ``TokenStore`` for tests and scripts."""


class TokenRefresher(base.TokenRefresher[Tokens], Protocol):
    """Exchanges a refresh token for a new pair (``oauth.XeroIdentity`` in production)."""


class TokenManager(base.TokenManager[Tokens]):
    """A valid access token for one connection, refreshed single-flight (see module docstring)."""

    provider = "Xero"
    log_prefix = "xero"
    log_key = "connection_key"
    reconnect_error = ReconnectRequired
    transient_error = TransientError
    default_refresh_margin = 120.0
    default_key_prefix = "crm_qbo:xero:token_refresh"

    @property
    def connection_key(self) -> str:
        return self.key
