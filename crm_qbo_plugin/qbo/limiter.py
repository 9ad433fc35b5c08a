"""Per-realm request limiting shared by every process through Redis, with QBO's numbers.

QBO allows 10 concurrent requests, 500 requests per minute and 40 batch requests per minute per
realm, and asks for 60 s of quiet after a 429 (qbo-api.md §6). ``RedisLimiter`` is
``apiclient.limiter``'s in-flight leases, rolling windows and shared cool-down with those budgets;
``LocalLimiter`` is the one-process stand-in without Redis.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis

from crm_qbo_plugin.apiclient.limiter import RedisSlotLimiter, Window
from crm_qbo_plugin.qbo.errors import TransientError

__all__ = ["Limiter", "LimiterConfig", "LocalLimiter", "RedisLimiter"]


@dataclass(frozen=True)
class LimiterConfig:
    """Budgets per realm, kept just under QBO's (10 in flight, 500/min, 40 batches/min).

    The margin (480/500, 38/40) covers requests that start in one minute by our clock and reach QBO
    in the next; a deployment sharing the realm with other apps sets lower budgets (``from_env``).
    """

    max_in_flight: int = 10
    requests_per_minute: int = 480
    batches_per_minute: int = 38
    window_seconds: float = 60.0
    lease_seconds: float = 150.0  # > the longest request (QBO times out at 120 s)
    cooldown_seconds: float = 60.0  # QBO: wait 60 s after a 429
    cooldown_jitter: float = 0.2  # up to +20 % so the realm's workers do not return at once
    acquire_timeout: float = 600.0  # give up (TransientError) after waiting this long
    poll_interval: float = 0.05  # longest sleep between attempts while a slot is busy

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LimiterConfig:
        """Defaults, overridden per deployment by CRM_QBO_LIMIT_IN_FLIGHT, _REQUESTS_PER_MINUTE
        and _BATCHES_PER_MINUTE (whole numbers from 1 up to QBO's own limit)."""
        environ = os.environ if environ is None else environ
        base = cls()
        values: dict[str, int] = {}
        for field, name, ceiling in _ENV_BUDGETS:
            raw = environ.get(name, "").strip()
            if not raw:
                continue
            if not raw.isdigit() or not 1 <= int(raw) <= ceiling:
                raise ValueError(f"{name}: must be a whole number from 1 to {ceiling}")
            values[field] = int(raw)
        return cls(**{**base.__dict__, **values})

    def cooldown(self, retry_after: float | None = None) -> float:
        base = max(self.cooldown_seconds, retry_after or 0.0)
        return base * (1.0 + random.uniform(0.0, self.cooldown_jitter))


_ENV_BUDGETS = (
    ("max_in_flight", "CRM_QBO_LIMIT_IN_FLIGHT", 10),
    ("requests_per_minute", "CRM_QBO_LIMIT_REQUESTS_PER_MINUTE", 500),
    ("batches_per_minute", "CRM_QBO_LIMIT_BATCHES_PER_MINUTE", 40),
)


class Limiter(Protocol):
    """What ``QboClient`` needs from a limiter."""

    def slot(self, realm_id: str, *, batch: bool = False) -> AbstractContextManager[None]:
        """Block until a request may start; the slot is held for the ``with`` block."""
        ...

    def record_throttle(self, realm_id: str, retry_after: float | None = None) -> float:
        """A 429 was seen: pause the realm for every process. Returns the pause in seconds."""
        ...


class RedisLimiter(RedisSlotLimiter[LimiterConfig]):
    """The shared per-realm limiter: ``apiclient``'s slots with QBO's windows (requests a minute,
    and batches a minute for a batch request). Safe to share between threads."""

    provider = "QBO"
    account_noun = "realm"
    log_prefix = "qbo"
    log_key = "realm_id"
    transient_error = TransientError
    wake_spread = 0.1

    def __init__(
        self,
        redis_client: redis.Redis,
        config: LimiterConfig | None = None,
        *,
        key_prefix: str = "crm_qbo:qbo:limit",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(redis_client, config or LimiterConfig.from_env(), key_prefix=key_prefix, sleep=sleep)

    def windows(self, batch: bool) -> Sequence[Window]:
        cfg = self.config
        requests = Window("requests", "requests_per_minute", cfg.requests_per_minute, cfg.window_seconds,
                          keep_seconds=cfg.window_seconds * 2)
        if not batch:
            return (requests,)
        return (requests, Window("batches", "batches_per_minute", cfg.batches_per_minute, cfg.window_seconds,
                                 keep_seconds=cfg.window_seconds * 2))


class LocalLimiter:
    """An in-process limiter (one process, no Redis): concurrency cap and 429 cool-down only."""

    def __init__(
        self, config: LimiterConfig | None = None, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.config = config or LimiterConfig()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._cooldown_until: dict[str, float] = {}

    def _semaphore(self, realm_id: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._semaphores.get(realm_id)
            if sem is None:
                sem = self._semaphores[realm_id] = threading.BoundedSemaphore(self.config.max_in_flight)
            return sem

    @contextmanager
    def slot(self, realm_id: str, *, batch: bool = False) -> Iterator[None]:
        while True:
            with self._lock:
                wait = self._cooldown_until.get(realm_id, 0.0) - time.monotonic()
            if wait <= 0:
                break
            self._sleep(wait)
        sem = self._semaphore(realm_id)
        if not sem.acquire(timeout=self.config.acquire_timeout):
            raise TransientError("no QBO request slot for the realm within the wait limit (in_flight)")
        try:
            yield
        finally:
            sem.release()

    def record_throttle(self, realm_id: str, retry_after: float | None = None) -> float:
        pause = self.config.cooldown(retry_after)
        with self._lock:
            until = time.monotonic() + pause
            self._cooldown_until[realm_id] = max(until, self._cooldown_until.get(realm_id, 0.0))
        return pause
