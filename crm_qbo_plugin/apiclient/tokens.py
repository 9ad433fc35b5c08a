"""OAuth tokens for one connection, and single-flight refresh across processes.

The failure this module exists to prevent is the rotation race (reliability.md §1.1): QBO and Xero
may rotate the refresh token on every refresh and then refuse the old one with ``invalid_grant``, so
two workers refreshing from the same stored token disconnect the customer. ``TokenManager``
therefore refreshes under a per-connection Redis lock, re-reads the stored tokens after taking it
(another process may have refreshed already), and saves the newest pair before releasing it.

What differs per accounting system stays with it: parsing the token endpoint's answer
(``Tokens.from_token_response`` in a subclass), the endpoint itself (a ``TokenRefresher``), the
error classes raised and the default margin and lock key (a ``TokenManager`` subclass).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Generic, Protocol, TypeVar

import redis
from redis.exceptions import LockError, LockNotOwnedError

__all__ = [
    "AccessTokenSource",
    "InMemoryTokenStore",
    "TokenManager",
    "TokenRefresher",
    "TokenStore",
    "Tokens",
]


def utcnow() -> datetime:
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

    def __str__(self) -> str:
        return repr(self)

    def access_valid_for(self, seconds: float, now: datetime | None = None) -> bool:
        """True if the access token stays valid for at least ``seconds`` more."""
        return self.access_expires_at - (now or utcnow()) > timedelta(seconds=seconds)


T = TypeVar("T", bound=Tokens)
T_co = TypeVar("T_co", bound=Tokens, covariant=True)


class TokenStore(Protocol[T]):
    """Where a connection's tokens live (the plugin's database implements this).

    ``save`` must be durable when it returns: the refresh lock is released right after it.
    """

    def load(self, key: str, /) -> T | None: ...

    def save(self, key: str, tokens: T, /) -> None: ...


class InMemoryTokenStore(Generic[T]):
    """A thread-safe in-process ``TokenStore`` for tests and scripts (behaves like a table)."""

    def __init__(self, initial: Mapping[str, T] | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, T] = dict(initial or {})
        self.saves = 0

    def load(self, key: str) -> T | None:
        with self._lock:
            return self._tokens.get(key)

    def save(self, key: str, tokens: T) -> None:
        with self._lock:
            self._tokens[key] = tokens
            self.saves += 1


class TokenRefresher(Protocol[T_co]):
    """Exchanges a refresh token for new tokens (the accounting system's token endpoint)."""

    def refresh(self, refresh_token: str, /) -> T_co: ...


class AccessTokenSource(Protocol):
    """What an API client needs: a bearer token now, and a different one after a 401."""

    def access_token(self) -> str: ...

    def refresh_after_rejection(self, rejected_access_token: str) -> str: ...


class TokenManager(Generic[T]):
    """Hands out a valid access token for one connection, refreshing single-flight.

    ``refresh_margin`` seconds before expiry the token is refreshed proactively. Concurrent callers in
    any process serialise on ``redis.lock.Lock`` keyed by the connection; the lock's value is
    redis-py's random id, never a token. If the lock cannot be had in ``lock_blocking_timeout``
    seconds, a still valid token is used anyway and an expired one raises ``transient_error`` (retry
    later). A subclass names the accounting system: its errors, log events, margin and lock key.
    """

    provider: ClassVar[str]  # in messages: "QuickBooks", "Xero"
    log_prefix: ClassVar[str]  # log events are "<log_prefix>.auth.…"
    log_key: ClassVar[str]  # the name the connection key is logged under
    reconnect_error: ClassVar[type[Exception]]  # the refresher's invalid_grant; raised if nothing is stored
    transient_error: ClassVar[type[Exception]]  # raised when the lock or the token is not to be had
    default_refresh_margin: ClassVar[float]  # seconds before expiry a token is refreshed
    default_key_prefix: ClassVar[str]  # of the refresh lock's Redis key

    def __init__(
        self,
        key: str,
        store: TokenStore[T],
        refresher: TokenRefresher[T],
        redis_client: redis.Redis,
        *,
        refresh_margin: float | None = None,
        lock_timeout: float = 60.0,
        lock_blocking_timeout: float = 30.0,
        key_prefix: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_refresh: Callable[[str], None] | None = None,
    ) -> None:
        self.key = key
        # Hears each token-endpoint call's outcome: refreshed, reconnect_required or failed.
        self._on_refresh = on_refresh or (lambda _outcome: None)
        self._store = store
        self._refresher = refresher
        self._redis = redis_client
        self._margin = self.default_refresh_margin if refresh_margin is None else refresh_margin
        self._lock_timeout = lock_timeout
        self._blocking_timeout = lock_blocking_timeout
        self._lock_name = f"{key_prefix or self.default_key_prefix}:{key}"
        self._clock = clock
        self._log = logging.getLogger(type(self).__module__)
        self._seen: dict[str, None] = {}  # recent secrets handled here, so errors can redact them
        self.refreshes = 0  # token-endpoint calls made by this manager
        self._cached: T | None = None

    # -- public ---------------------------------------------------------------------------------

    def access_token(self) -> str:
        """A bearer token valid for at least ``refresh_margin`` seconds if at all possible.

        The last good token is kept in memory, so the store is read only near expiry or after a
        401 (an access token stays valid until it expires, even after a refresh).
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

    def _load(self) -> T:
        tokens = self._store.load(self.key)
        if tokens is None:
            raise self.reconnect_error(f"no {self.provider} tokens are stored for this connection")
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
            # The server refused ``stale``; any other unexpired token was issued after it.
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
            raise self.transient_error(f"the token refresh lock is unavailable ({type(exc).__name__})") from None
        if not acquired:
            tokens = self._load()
            if tokens.access_token != stale and tokens.access_valid_for(0, self._clock()):
                return tokens.access_token
            if not forced and tokens.access_valid_for(0, self._clock()):
                return tokens.access_token
            raise self.transient_error(f"another process is refreshing the {self.provider} token; retry shortly")
        try:
            tokens = self._load()  # re-read: someone may have refreshed while we waited
            if self._usable(tokens, stale, forced):
                self._log.debug("%s.auth.refresh_skipped %s=%s", self.log_prefix, self.log_key, self.key)
                self._cached = tokens
                return tokens.access_token
            try:
                fresh = self._refresher.refresh(tokens.refresh_token)
            except self.reconnect_error:
                self._on_refresh("reconnect_required")
                # The store may have been updated outside the lock (e.g. a reconnect just now).
                latest = self._load()
                if latest.refresh_token != tokens.refresh_token and latest.access_valid_for(0, self._clock()):
                    return latest.access_token
                self._log.warning("%s.auth.reconnect_required %s=%s", self.log_prefix, self.log_key, self.key)
                raise
            except Exception:
                self._on_refresh("failed")
                raise
            finally:
                self.refreshes += 1
            self._remember(fresh)
            self._store.save(self.key, fresh)  # the newest refresh token, before unlocking
            self._on_refresh("refreshed")
            self._cached = fresh
            self._log.info(
                "%s.auth.refreshed %s=%s access_expires_at=%s",
                self.log_prefix,
                self.log_key,
                self.key,
                fresh.access_expires_at.isoformat(),
            )
            return fresh.access_token
        finally:
            try:
                lock.release()
            except (LockNotOwnedError, LockError):
                self._log.warning("%s.auth.refresh_lock_expired %s=%s", self.log_prefix, self.log_key, self.key)
