"""OAuth tokens for one QBO connection, and single-flight refresh across processes.

The failure this module exists to prevent is the rotation race (reliability.md §1.1): QBO may
rotate the refresh token on every refresh and then refuses the old one with ``invalid_grant``, so
two workers refreshing from the same stored token disconnect the customer. ``TokenManager``
therefore refreshes under a per-realm Redis lock, re-reads the stored tokens after taking it (another
process may have refreshed already), and saves the newest refresh token before releasing it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import redis
from redis.exceptions import LockError, LockNotOwnedError

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

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Tokens:
    """An access/refresh token pair with their expiry times (aware datetimes).

    The secrets are excluded from ``repr`` so a stray log line or traceback cannot leak them.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("access_expires_at", "refresh_expires_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"Tokens.{name} must be timezone-aware")

    def __repr__(self) -> str:
        return (
            f"Tokens(access_token=<hidden>, refresh_token=<hidden>, "
            f"access_expires_at={self.access_expires_at.isoformat()}, "
            f"refresh_expires_at={self.refresh_expires_at.isoformat() if self.refresh_expires_at else None})"
        )

    __str__ = __repr__

    def access_valid_for(self, seconds: float, now: datetime | None = None) -> bool:
        """True if the access token stays valid for at least ``seconds`` more."""
        return self.access_expires_at - (now or _utcnow()) > timedelta(seconds=seconds)

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
        issued = now or _utcnow()
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
class TokenStore(Protocol):
    """Where a connection's tokens live (the plugin's database implements this).

    ``save`` must be durable when it returns: the refresh lock is released right after it.
    """

    def load(self, realm_key: str) -> Tokens | None: ...

    def save(self, realm_key: str, tokens: Tokens) -> None: ...


class InMemoryTokenStore:
    """A thread-safe in-process ``TokenStore`` for tests and scripts (behaves like a table)."""

    def __init__(self, initial: Mapping[str, Tokens] | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Tokens] = dict(initial or {})
        self.saves = 0

    def load(self, realm_key: str) -> Tokens | None:
        with self._lock:
            return self._tokens.get(realm_key)

    def save(self, realm_key: str, tokens: Tokens) -> None:
        with self._lock:
            self._tokens[realm_key] = tokens
            self.saves += 1


class TokenRefresher(Protocol):
    """Exchanges a refresh token for new tokens (``oauth.IntuitTokenEndpoint`` in production)."""

    def refresh(self, refresh_token: str) -> Tokens: ...


class AccessTokenSource(Protocol):
    """What ``QboClient`` needs: a bearer token now, and a fresh one after a 401."""

    def access_token(self) -> str: ...

    def refresh_after_rejection(self, rejected_access_token: str) -> str: ...

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


class TokenManager:
    """Hands out a valid access token for one connection, refreshing single-flight.

    ``refresh_margin`` seconds before expiry the token is refreshed proactively. Concurrent callers in
    any process serialise on ``redis.lock.Lock`` keyed by the realm; the lock's value is redis-py's
    random id, never a token. If the lock cannot be had in ``lock_blocking_timeout`` seconds, a still
    valid token is used anyway and an expired one raises ``TransientError`` (retry later).
    """

    def __init__(
        self,
        realm_key: str,
        store: TokenStore,
        refresher: TokenRefresher,
        redis_client: redis.Redis,
        *,
        refresh_margin: float = 300.0,
        lock_timeout: float = 60.0,
        lock_blocking_timeout: float = 30.0,
        key_prefix: str = "crm_qbo:qbo:token_refresh",
        clock: Callable[[], datetime] = _utcnow,
        on_refresh: Callable[[str], None] | None = None,
    ) -> None:
        self.realm_key = realm_key
        # Hears each token-endpoint call's outcome: refreshed, reconnect_required or failed.
        self._on_refresh = on_refresh or (lambda _outcome: None)
        self._store = store
        self._refresher = refresher
        self._redis = redis_client
        self._margin = refresh_margin
        self._lock_timeout = lock_timeout
        self._blocking_timeout = lock_blocking_timeout
        self._lock_name = f"{key_prefix}:{realm_key}"
        self._clock = clock
        self._seen: dict[str, None] = {}  # recent secrets handled here, so errors can redact them
        self.refreshes = 0  # token-endpoint calls made by this manager
        self._cached: Tokens | None = None

    # -- public ---------------------------------------------------------------------------------

    def access_token(self) -> str:
        """A bearer token valid for at least ``refresh_margin`` seconds if at all possible.

        The last good token is kept in memory, so the store is read only near expiry or after a
        401 (an access token stays valid at Intuit until it expires, even after a refresh).
        """
        cached = self._cached
        if cached is not None and cached.access_valid_for(self._margin, self._clock()):
            return cached.access_token
        tokens = self._load()
        if tokens.access_valid_for(self._margin, self._clock()):
            self._cached = tokens
            return tokens.access_token
        return self._refresh(stale=tokens.access_token, forced=False)

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        """After a 401: return a different valid token, refreshing unless another process did."""
        self._cached = None
        return self._refresh(stale=rejected_access_token, forced=True)

    def secrets(self) -> tuple[str, ...]:
        """Token values this manager has handled (for redaction only; never log them)."""
        return tuple(self._seen)

    # -- internals ------------------------------------------------------------------------------

    def _load(self) -> Tokens:
        tokens = self._store.load(self.realm_key)
        if tokens is None:
            raise ReconnectRequired("no QuickBooks tokens are stored for this connection")
        self._remember(tokens)
        return tokens

    def _remember(self, tokens: Tokens) -> None:
        for value in (tokens.access_token, tokens.refresh_token):
            self._seen.pop(value, None)
            self._seen[value] = None
        while len(self._seen) > 16:  # a long-lived manager refreshes hourly; keep the recent ones
            del self._seen[next(iter(self._seen))]

    def _usable(self, tokens: Tokens, stale: str, forced: bool) -> bool:
        now = self._clock()
        if forced:
            # QBO refused ``stale``; any other unexpired token was issued after it.
            return tokens.access_token != stale and tokens.access_valid_for(0, now)
        return tokens.access_valid_for(self._margin, now)

    def _refresh(self, *, stale: str, forced: bool) -> str:
        lock = self._redis.lock(
            self._lock_name,
            timeout=self._lock_timeout,
            blocking=True,
            blocking_timeout=self._blocking_timeout,
        )
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
            raise TransientError("another process is refreshing the QuickBooks token; retry shortly")
        try:
            tokens = self._load()  # re-read: someone may have refreshed while we waited
            if self._usable(tokens, stale, forced):
                logger.debug("qbo.auth.refresh_skipped realm_key=%s", self.realm_key)
                self._cached = tokens
                return tokens.access_token
            try:
                fresh = self._refresher.refresh(tokens.refresh_token)
            except ReconnectRequired:
                self._on_refresh("reconnect_required")
                # The store may have been updated outside the lock (e.g. a reconnect just now).
                latest = self._load()
                if latest.refresh_token != tokens.refresh_token and latest.access_valid_for(0, self._clock()):
                    return latest.access_token
                logger.warning("qbo.auth.reconnect_required realm_key=%s", self.realm_key)
                raise
            except Exception:
                self._on_refresh("failed")
                raise
            finally:
                self.refreshes += 1
            self._remember(fresh)
            self._store.save(self.realm_key, fresh)  # the newest refresh token, before unlocking
            self._on_refresh("refreshed")
            self._cached = fresh
            logger.info(
                "qbo.auth.refreshed realm_key=%s access_expires_at=%s",
                self.realm_key,
                fresh.access_expires_at.isoformat(),
            )
            return fresh.access_token
        finally:
            try:
                lock.release()
            except (LockNotOwnedError, LockError):
                logger.warning("qbo.auth.refresh_lock_expired realm_key=%s", self.realm_key)
