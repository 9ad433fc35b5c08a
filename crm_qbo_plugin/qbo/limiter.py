"""Per-realm request limiting shared by every process through Redis.

QBO allows 10 concurrent requests, 500 requests per minute and 40 batch requests per minute per
realm, and asks for 60 s of quiet after a 429 (qbo-api.md §6). ``RedisLimiter`` keeps, per realm:

* a semaphore of in-flight requests: a sorted set of holders scored by lease expiry, so a process
  that dies mid-request frees its slot when the lease runs out;
* rolling one-minute windows of request and batch start times (sorted sets);
* a cool-down deadline set by any process that saw a 429 and honoured by all.

Acquisition is one Lua script using Redis' clock, so the check and the claim are atomic and hosts
with skewed clocks agree. Waiters poll with jitter; there is no queue, hence no fairness guarantee.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis

from crm_qbo_plugin.qbo.errors import TransientError

__all__ = ["Limiter", "LimiterConfig", "LocalLimiter", "RedisLimiter"]

logger = logging.getLogger(__name__)


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


_ACQUIRE = """
local inflight, reqs, batches, cool = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local holder = ARGV[1]
local max_inflight = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local bpm = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local lease = tonumber(ARGV[6])
local is_batch = ARGV[7] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local until_ms = tonumber(redis.call('GET', cool) or '0')
if until_ms > now then return {1, until_ms - now} end

redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
if redis.call('ZCARD', inflight) >= max_inflight then
  local first = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
  return {2, math.max(1, tonumber(first[2]) - now)}
end

redis.call('ZREMRANGEBYSCORE', reqs, '-inf', now - window)
if redis.call('ZCARD', reqs) >= rpm then
  local oldest = redis.call('ZRANGE', reqs, 0, 0, 'WITHSCORES')
  return {3, math.max(1, tonumber(oldest[2]) + window - now)}
end

if is_batch then
  redis.call('ZREMRANGEBYSCORE', batches, '-inf', now - window)
  if redis.call('ZCARD', batches) >= bpm then
    local oldest = redis.call('ZRANGE', batches, 0, 0, 'WITHSCORES')
    return {4, math.max(1, tonumber(oldest[2]) + window - now)}
  end
  redis.call('ZADD', batches, now, holder)
  redis.call('PEXPIRE', batches, window * 2)
end

redis.call('ZADD', inflight, now + lease, holder)
redis.call('PEXPIRE', inflight, lease * 2)
redis.call('ZADD', reqs, now, holder)
redis.call('PEXPIRE', reqs, window * 2)
return {0, 0}
"""

_COOLDOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local target = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if target > current then
  redis.call('SET', KEYS[1], target, 'PX', tonumber(ARGV[1]) + 1000)
  return tonumber(ARGV[1])
end
return current - now
"""

_REASONS = {1: "cooldown", 2: "in_flight", 3: "requests_per_minute", 4: "batches_per_minute"}


class RedisLimiter:
    """The shared per-realm limiter (see module docstring). Safe to share between threads."""

    def __init__(
        self,
        redis_client: redis.Redis,
        config: LimiterConfig | None = None,
        *,
        key_prefix: str = "crm_qbo:qbo:limit",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or LimiterConfig.from_env()
        self._redis = redis_client
        self._prefix = key_prefix
        self._sleep = sleep
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._cooldown = redis_client.register_script(_COOLDOWN)

    def _keys(self, realm_id: str) -> list[str]:
        base = f"{self._prefix}:{{{realm_id}}}"  # hash tag: one cluster slot per realm
        return [f"{base}:inflight", f"{base}:requests", f"{base}:batches", f"{base}:cooldown"]

    def try_acquire(self, realm_id: str, holder: str, *, batch: bool = False) -> tuple[str | None, float]:
        """One attempt: ``(None, 0)`` if the slot is ours, else ``(reason, seconds_to_wait)``."""
        cfg = self.config
        status, wait_ms = self._acquire(
            keys=self._keys(realm_id),
            args=[
                holder,
                cfg.max_in_flight,
                cfg.requests_per_minute,
                cfg.batches_per_minute,
                int(cfg.window_seconds * 1000),
                int(cfg.lease_seconds * 1000),
                "1" if batch else "0",
            ],
        )
        if int(status) == 0:
            return None, 0.0
        return _REASONS.get(int(status), "busy"), int(wait_ms) / 1000.0

    def release(self, realm_id: str, holder: str) -> None:
        self._redis.zrem(self._keys(realm_id)[0], holder)

    def acquire(self, realm_id: str, *, batch: bool = False) -> str:
        """Wait for a slot and return its holder id (pass it to ``release``)."""
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self.config.acquire_timeout
        while True:
            try:
                reason, wait = self.try_acquire(realm_id, holder, batch=batch)
            except redis.RedisError as exc:
                # No limiter, no request: sending blind could break QBO's limits for every worker.
                raise TransientError(f"the request limiter is unavailable ({type(exc).__name__})") from None
            if reason is None:
                return holder
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransientError(f"no QBO request slot for the realm within the wait limit ({reason})")
            if reason == "cooldown":
                # Everyone wakes near the deadline; spread them out a little.
                pause = wait + random.uniform(0.0, max(0.05, wait * 0.1))
            elif reason == "in_flight":
                pause = random.uniform(0.2, 1.0) * self.config.poll_interval
            else:
                # The window says exactly when the oldest request leaves it: no jitter, so the
                # budget is used to the full instead of losing a poll interval per request.
                pause = wait
            self._sleep(min(pause, remaining))

    @contextmanager
    def slot(self, realm_id: str, *, batch: bool = False) -> Iterator[None]:
        holder = self.acquire(realm_id, batch=batch)
        try:
            yield
        finally:
            try:
                self.release(realm_id, holder)
            except redis.RedisError:
                # The lease expires on its own; losing Redis here must not mask the real outcome.
                logger.warning("qbo.limiter.release_failed realm_id=%s", realm_id)

    def record_throttle(self, realm_id: str, retry_after: float | None = None) -> float:
        pause = self.config.cooldown(retry_after)
        try:
            remaining_ms = self._cooldown(keys=[self._keys(realm_id)[3]], args=[int(pause * 1000)])
        except redis.RedisError:
            logger.warning("qbo.limiter.cooldown_not_shared realm_id=%s", realm_id)
            return pause
        logger.warning("qbo.limiter.cooldown realm_id=%s seconds=%.1f", realm_id, pause)
        return int(remaining_ms) / 1000.0

    def cooldown_remaining(self, realm_id: str) -> float:
        """Seconds left in the realm's cool-down (0 if none)."""
        ttl = self._redis.pttl(self._keys(realm_id)[3])
        if not isinstance(ttl, int) or ttl <= 0:
            return 0.0
        value = self._redis.get(self._keys(realm_id)[3])
        if value is None:
            return 0.0
        now_s, now_us = self._redis.time()
        return max(0.0, (int(value) - (int(now_s) * 1000 + int(now_us) // 1000)) / 1000.0)

    def in_flight(self, realm_id: str) -> int:
        """Live holders for the realm (expired leases excluded)."""
        now_s, now_us = self._redis.time()
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        return int(self._redis.zcount(self._keys(realm_id)[0], now_ms, "+inf"))


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
