"""Per-organisation request limiting shared by every worker through Redis.

Xero allows, per organisation, 5 requests in flight, 60 a minute and 5,000 a day (1,000 on the
Starter tier), and answers 429 with ``Retry-After`` and ``X-Rate-Limit-Problem`` past them
(xero-api.md §6). ``RedisLimiter`` is ``qbo/limiter.py``'s design with Xero's numbers and a day
window: per tenant a lease-scored in-flight set, rolling minute and day windows (sorted sets), and
a cool-down any worker sets after a 429 and every worker honours; one Lua script on Redis' clock
checks and claims atomically. It also keeps the last ``X-DayLimit-Remaining`` Xero sent, so the
card can warn while the daily budget runs low (Xero's count includes other apps' calls, ours
does not).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis

from crm_qbo_plugin.xero.errors import ThrottledError, TransientError

__all__ = ["Limiter", "LimiterConfig", "RedisLimiter"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimiterConfig:
    """Budgets per organisation, just under Xero's so clock skew at a window edge is harmless."""

    max_in_flight: int = 5
    requests_per_minute: int = 58
    requests_per_day: int = 4900
    minute_seconds: float = 60.0
    day_seconds: float = 86400.0
    lease_seconds: float = 120.0  # longer than any request may take
    cooldown_jitter: float = 0.2
    acquire_timeout: float = 600.0
    poll_interval: float = 0.05

    def cooldown(self, retry_after: float | None) -> float:
        base = max(1.0, retry_after or 60.0)
        return base * (1.0 + random.uniform(0.0, self.cooldown_jitter))


class Limiter(Protocol):
    """What ``XeroClient`` needs from a limiter."""

    def slot(self, tenant_id: str) -> AbstractContextManager[None]:
        """Block until a request may start; held for the ``with`` block."""
        ...

    def record_throttle(self, tenant_id: str, retry_after: float | None = None) -> float:
        """A 429 was seen: pause the organisation for every worker; returns the pause."""
        ...

    def record_remaining(self, tenant_id: str, day_remaining: int) -> None:
        """Keep Xero's ``X-DayLimit-Remaining`` for the card."""
        ...


_ACQUIRE = """
local inflight, minute, day, cool = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local holder = ARGV[1]
local max_inflight, per_minute, per_day = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local minute_ms, day_ms, lease = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(redis.call('GET', cool) or '0')
if until_ms > now then return {1, until_ms - now} end
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
if redis.call('ZCARD', inflight) >= max_inflight then
  local first = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
  return {2, math.max(1, tonumber(first[2]) - now)}
end
redis.call('ZREMRANGEBYSCORE', day, '-inf', now - day_ms)
if redis.call('ZCARD', day) >= per_day then
  local oldest = redis.call('ZRANGE', day, 0, 0, 'WITHSCORES')
  return {4, math.max(1, tonumber(oldest[2]) + day_ms - now)}
end
redis.call('ZREMRANGEBYSCORE', minute, '-inf', now - minute_ms)
if redis.call('ZCARD', minute) >= per_minute then
  local oldest = redis.call('ZRANGE', minute, 0, 0, 'WITHSCORES')
  return {3, math.max(1, tonumber(oldest[2]) + minute_ms - now)}
end
redis.call('ZADD', inflight, now + lease, holder)
redis.call('PEXPIRE', inflight, lease * 2)
redis.call('ZADD', minute, now, holder)
redis.call('PEXPIRE', minute, minute_ms * 2)
redis.call('ZADD', day, now, holder)
redis.call('PEXPIRE', day, day_ms + minute_ms)
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

_REASONS = {1: "cooldown", 2: "in_flight", 3: "minute", 4: "day"}


class RedisLimiter:
    """The shared per-organisation limiter (see module docstring); thread-safe."""

    def __init__(self, redis_client: redis.Redis, config: LimiterConfig | None = None, *,
                 key_prefix: str = "crm_qbo:xero:limit",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config or LimiterConfig()
        self._redis = redis_client
        self._prefix = key_prefix
        self._sleep = sleep
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._cooldown = redis_client.register_script(_COOLDOWN)

    def _keys(self, tenant_id: str) -> list[str]:
        base = f"{self._prefix}:{{{tenant_id}}}"  # hash tag: one cluster slot per organisation
        return [f"{base}:inflight", f"{base}:minute", f"{base}:day", f"{base}:cooldown",
                f"{base}:day_remaining"]

    def try_acquire(self, tenant_id: str, holder: str) -> tuple[str | None, float]:
        """One attempt: ``(None, 0)`` if the slot is ours, else ``(reason, seconds_to_wait)``."""
        cfg = self.config
        status, wait_ms = self._acquire(keys=self._keys(tenant_id)[:4], args=[
            holder, cfg.max_in_flight, cfg.requests_per_minute, cfg.requests_per_day,
            int(cfg.minute_seconds * 1000), int(cfg.day_seconds * 1000),
            int(cfg.lease_seconds * 1000)])
        if int(status) == 0:
            return None, 0.0
        return _REASONS.get(int(status), "busy"), int(wait_ms) / 1000.0

    def release(self, tenant_id: str, holder: str) -> None:
        self._redis.zrem(self._keys(tenant_id)[0], holder)

    def acquire(self, tenant_id: str) -> str:
        """Wait for a slot and return its holder id (pass it to ``release``)."""
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self.config.acquire_timeout
        while True:
            try:
                reason, wait = self.try_acquire(tenant_id, holder)
            except redis.RedisError as exc:
                raise TransientError(f"the Xero request limiter is unavailable ({type(exc).__name__})") \
                    from None
            if reason is None:
                return holder
            remaining = deadline - time.monotonic()
            if reason == "day":
                # The day budget frees in hours: fail now, the job runner reschedules.
                raise ThrottledError("the organisation's daily Xero budget is spent",
                                     retry_after=wait, problem="day", status=None)
            if remaining <= 0:
                raise TransientError(f"no Xero request slot for the organisation ({reason})")
            pause = random.uniform(0.2, 1.0) * self.config.poll_interval if reason == "in_flight" \
                else wait
            self._sleep(min(pause, remaining))

    @contextmanager
    def slot(self, tenant_id: str) -> Iterator[None]:
        holder = self.acquire(tenant_id)
        try:
            yield
        finally:
            try:
                self.release(tenant_id, holder)
            except redis.RedisError:
                logger.warning("xero.limiter.release_failed tenant_id=%s", tenant_id)

    def record_throttle(self, tenant_id: str, retry_after: float | None = None) -> float:
        pause = self.config.cooldown(retry_after)
        try:
            remaining_ms = self._cooldown(keys=[self._keys(tenant_id)[3]], args=[int(pause * 1000)])
        except redis.RedisError:
            logger.warning("xero.limiter.cooldown_not_shared tenant_id=%s", tenant_id)
            return pause
        logger.warning("xero.limiter.cooldown tenant_id=%s seconds=%.1f", tenant_id, pause)
        return int(remaining_ms) / 1000.0

    def cooldown_remaining(self, tenant_id: str) -> float:
        """Seconds left in the organisation's cool-down (0 if none)."""
        ttl = self._redis.pttl(self._keys(tenant_id)[3])  # the key outlives the pause by 1 s
        return max(0.0, (int(ttl) - 1000) / 1000.0) if isinstance(ttl, int) and ttl > 0 else 0.0

    def record_remaining(self, tenant_id: str, day_remaining: int) -> None:
        try:
            self._redis.set(self._keys(tenant_id)[4], int(day_remaining), ex=2 * 86400)
        except redis.RedisError:
            logger.warning("xero.limiter.remaining_not_kept tenant_id=%s", tenant_id)

    def day_remaining(self, tenant_id: str) -> int | None:
        """The last ``X-DayLimit-Remaining`` Xero sent for the organisation (None: not seen)."""
        value = self._redis.get(self._keys(tenant_id)[4])
        return int(value) if value is not None else None
