"""OAuth tokens for one Xero connection, refreshed single-flight across processes.

Xero rotates the refresh token on every refresh and accepts the previous one for 30 more minutes
only (xero-api.md §1, the grace for a lost response). So ``TokenManager`` refreshes under a
per-connection Redis lock, re-reads the store after taking it (another worker may have refreshed),
and saves the new pair before releasing it; until that save returns, the old refresh token stays
the stored one, so a crash between Xero's answer and the save is healed by the grace period: the
next refresh reuses the old token, Xero answers again, and that answer is saved. Past the grace the
old token gets ``invalid_grant`` → ``ReconnectRequired``.

The lock-and-re-read design is ``qbo/tokens.py``'s; it is provider-neutral and is written again
here only because ``xero`` and ``qbo`` are sibling leaves (moving it to a shared module is a later
step).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from redis.exceptions import LockError, LockNotOwnedError

from crm_qbo_plugin.xero.errors import ReconnectRequired, TransientError

__all__ = ["InMemoryTokenStore", "TokenManager", "TokenRefresher", "TokenStore", "Tokens"]

logger = logging.getLogger(__name__)

REFRESH_TOKEN_DAYS = 60  # an unused Xero refresh token dies after 60 days


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Tokens:
    """An access/refresh pair with aware expiry times; secrets are kept out of ``repr``."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None
    scope: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("access_expires_at", "refresh_expires_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"Tokens.{name} must be timezone-aware")

    def access_valid_for(self, seconds: float, now: datetime | None = None) -> bool:
        return self.access_expires_at - (now or _utcnow()) > timedelta(seconds=seconds)

    @classmethod
    def from_token_response(cls, payload: Mapping[str, Any], *, now: datetime | None = None) -> Tokens:
        """Build from Xero's token answer (``expires_in`` 1800; a refresh token only with
        ``offline_access``, which the sync requires)."""
        issued = now or _utcnow()
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


class TokenStore(Protocol):
    """Where a connection's tokens live; ``save`` must be durable when it returns."""

    def load(self, connection_key: str) -> Tokens | None: ...

    def save(self, connection_key: str, tokens: Tokens) -> None: ...


class InMemoryTokenStore:
    """A thread-safe in-process ``TokenStore`` for tests and scripts."""

    def __init__(self, initial: Mapping[str, Tokens] | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Tokens] = dict(initial or {})
        self.saves = 0

    def load(self, connection_key: str) -> Tokens | None:
        with self._lock:
            return self._tokens.get(connection_key)

    def save(self, connection_key: str, tokens: Tokens) -> None:
        with self._lock:
            self._tokens[connection_key] = tokens
            self.saves += 1


class TokenRefresher(Protocol):
    """Exchanges a refresh token for a new pair (``oauth.XeroIdentity`` in production)."""

    def refresh(self, refresh_token: str) -> Tokens: ...


class TokenManager:
    """A valid access token for one connection, refreshed single-flight (see module docstring)."""

    def __init__(
        self,
        connection_key: str,
        store: TokenStore,
        refresher: TokenRefresher,
        redis_client: redis.Redis,
        *,
        refresh_margin: float = 120.0,
        lock_timeout: float = 60.0,
        lock_blocking_timeout: float = 30.0,
        key_prefix: str = "crm_qbo:xero:token_refresh",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.connection_key = connection_key
        self._store = store
        self._refresher = refresher
        self._redis = redis_client
        self._margin = refresh_margin
        self._lock_timeout = lock_timeout
        self._blocking_timeout = lock_blocking_timeout
        self._lock_name = f"{key_prefix}:{connection_key}"
        self._clock = clock
        self.refreshes = 0  # token-endpoint calls made by this manager
        self._cached: Tokens | None = None

    def access_token(self) -> str:
        """A bearer token valid for at least ``refresh_margin`` seconds.

        The last good pair is kept in memory, so the store is read only near expiry or after a
        401 (a Xero access token stays valid until it expires, even after a refresh)."""
        cached = self._cached
        if cached is not None and cached.access_valid_for(self._margin, self._clock()):
            return cached.access_token
        tokens = self._load()
        if tokens.access_valid_for(self._margin, self._clock()):
            self._cached = tokens
            return tokens.access_token
        return self._refresh(stale=tokens.access_token, forced=False)

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        """After a 401: a different valid token, refreshing unless another worker already did."""
        self._cached = None
        return self._refresh(stale=rejected_access_token, forced=True)

    def _load(self) -> Tokens:
        tokens = self._store.load(self.connection_key)
        if tokens is None:
            raise ReconnectRequired("no Xero tokens are stored for this connection")
        return tokens

    def _refresh(self, *, stale: str, forced: bool) -> str:
        lock = self._redis.lock(self._lock_name, timeout=self._lock_timeout, blocking=True,
                                blocking_timeout=self._blocking_timeout)
        try:
            acquired = lock.acquire()
        except redis.RedisError as exc:
            raise TransientError(f"the token refresh lock is unavailable ({type(exc).__name__})") from None
        if not acquired:
            tokens = self._load()
            if tokens.access_token != stale and tokens.access_valid_for(0, self._clock()):
                return tokens.access_token
            if not forced and tokens.access_valid_for(0, self._clock()):
                return tokens.access_token
            raise TransientError("another worker is refreshing the Xero token; retry shortly")
        try:
            tokens = self._load()  # re-read: someone may have refreshed while we waited
            now = self._clock()
            fresh_enough = (tokens.access_token != stale and tokens.access_valid_for(0, now)) if forced \
                else tokens.access_valid_for(self._margin, now)
            if fresh_enough:
                self._cached = tokens
                return tokens.access_token
            self.refreshes += 1
            try:
                fresh = self._refresher.refresh(tokens.refresh_token)
            except ReconnectRequired:
                # A reconnect may have stored a new pair outside the lock meanwhile.
                latest = self._load()
                if latest.refresh_token != tokens.refresh_token and latest.access_valid_for(0, now):
                    return latest.access_token
                logger.warning("xero.auth.reconnect_required connection_key=%s", self.connection_key)
                raise
            self._store.save(self.connection_key, fresh)  # the new pair, before the lock is let go
            self._cached = fresh
            logger.info("xero.auth.refreshed connection_key=%s access_expires_at=%s",
                        self.connection_key, fresh.access_expires_at.isoformat())
            return fresh.access_token
        finally:
            try:
                lock.release()
            except (LockNotOwnedError, LockError):
                logger.warning("xero.auth.refresh_lock_expired connection_key=%s", self.connection_key)
