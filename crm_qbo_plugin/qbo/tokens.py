"""OAuth tokens for one QBO connection: Intuit's token answer, and single-flight refresh.

The pair, the stores and the refresh under a shared lock are ``apiclient.tokens`` (the rotation
race they prevent is reliability.md §1.1); what is QuickBooks' own is here: Intuit's token response
(``x_refresh_token_expires_in``; a refresh may keep the refresh token), the errors raised, the
5-minute refresh margin and the lock's key, and ``secrets()`` for redacting QBO's fault texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from crm_qbo_plugin.apiclient import tokens as base
from crm_qbo_plugin.apiclient.tokens import utcnow
from crm_qbo_plugin.qbo.errors import ReconnectRequired, TransientError

__all__ = [
    "AccessTokenSource",
    "InMemoryTokenStore",
    "StaticTokenSource",
    "TokenManager",
    "TokenRefresher",
    "TokenStore",
    "Tokens",
]


@dataclass(frozen=True, repr=False)
class Tokens(base.Tokens):
    """An access/refresh token pair with their expiry times; the secrets stay out of ``repr``."""

    @classmethod
    def from_token_response(
        cls,
        payload: Mapping[str, Any],
        *,
        now: datetime | None = None,
        previous_refresh_token: str | None = None,
    ) -> Tokens:
        """Build from Intuit's token response (``expires_in``, ``x_refresh_token_expires_in``).

        If the response carries no refresh token, the one just used stays current.
        """
        issued = now or utcnow()
        access = payload.get("access_token")
        refresh = payload.get("refresh_token") or previous_refresh_token
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            raise TransientError("the token endpoint answered without an access or refresh token")
        expires_in = int(payload.get("expires_in") or 3600)
        refresh_in = payload.get("x_refresh_token_expires_in")
        return cls(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=issued + timedelta(seconds=expires_in),
            refresh_expires_at=issued + timedelta(seconds=int(refresh_in)) if refresh_in else None,
        )


@runtime_checkable
class TokenStore(base.TokenStore[Tokens], Protocol):
    """Where a connection's tokens live (the plugin's database implements this).

    ``save`` must be durable when it returns: the refresh lock is released right after it.
    """


class InMemoryTokenStore(base.InMemoryTokenStore[Tokens]):
    """A thread-safe in-process ``TokenStore`` for tests and scripts (behaves like a table)."""


class TokenRefresher(base.TokenRefresher[Tokens], Protocol):
    """Exchanges a refresh token for new tokens (``oauth.IntuitTokenEndpoint`` in production)."""


class AccessTokenSource(base.AccessTokenSource, Protocol):
    """What ``QboClient`` needs: a bearer token now, a fresh one after a 401, and the secrets to
    redact from QBO's fault texts."""

    def secrets(self) -> tuple[str, ...]: ...


class StaticTokenSource:
    """A fixed access token (scripts, and tests of the client alone); cannot refresh."""

    def __init__(self, access_token: str) -> None:
        self._token = access_token

    def access_token(self) -> str:
        return self._token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        return self._token

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)


class TokenManager(base.TokenManager[Tokens]):
    """Hands out a valid QBO access token for one realm, refreshing single-flight under a per-realm
    Redis lock (``apiclient.tokens.TokenManager``); raises QBO's ``ReconnectRequired`` and
    ``TransientError``."""

    provider = "QuickBooks"
    log_prefix = "qbo"
    log_key = "realm_key"
    reconnect_error = ReconnectRequired
    transient_error = TransientError
    default_refresh_margin = 300.0
    default_key_prefix = "crm_qbo:qbo:token_refresh"

    @property
    def realm_key(self) -> str:
        return self.key
