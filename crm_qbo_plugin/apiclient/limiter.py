"""Per-account request limiting shared by every process through Redis.

An account is what an accounting system counts requests against (a QBO realm, a Xero organisation).
``RedisSlotLimiter`` keeps, per account:

* a semaphore of in-flight requests: a sorted set of holders scored by lease expiry, so a process
  that dies mid-request frees its slot when the lease runs out;
* rolling windows of request start times (sorted sets), one per limit the system sets (requests a
  minute, a day, batches a minute: ``Window``);
* a cool-down deadline set by any process that saw a 429 and honoured by all.

Acquisition is one Lua script using Redis' clock, so the check and the claim are atomic and hosts
with skewed clocks agree. Waiters poll with jitter; there is no queue, hence no fairness guarantee.
A subclass brings the system's numbers (its config), the windows a request counts in, and its
errors.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

import redis

__all__ = ["RedisSlotLimiter", "SlotConfig", "Window"]


@dataclass(frozen=True)
class Window:
    """At most ``limit`` request starts in any ``seconds``; ``reason`` is reported while it is full."""

    suffix: str  # the last part of its Redis key
    reason: str
    limit: int
    seconds: float
    keep_seconds: float  # how long the key outlives the newest start it holds


class SlotConfig(Protocol):
    """What the shared limiter reads from a system's ``LimiterConfig``."""

    @property
    def max_in_flight(self) -> int: ...

    @property
    def lease_seconds(self) -> float: ...  # > the longest request: a dead holder's slot frees then

    @property
    def acquire_timeout(self) -> float: ...  # give up (transient error) after waiting this long

    @property
    def poll_interval(self) -> float: ...  # longest sleep between attempts while a slot is busy

    def cooldown(self, retry_after: float | None) -> float: ...  # the pause after a 429


C = TypeVar("C", bound=SlotConfig)

# KEYS: in-flight set, cool-down, then one sorted set per window.
# ARGV: holder, max in flight, lease ms, then per window: limit, span ms, key lifetime ms.
# Returns {0, 0} when the slot is claimed, else {status, ms to wait}: 1 cool-down, 2 in flight,
# 2 + i the i-th window (1-based).
_ACQUIRE = """
local inflight, cool = KEYS[1], KEYS[2]
local holder = ARGV[1]
local max_inflight, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local until_ms = tonumber(redis.call('GET', cool) or '0')
if until_ms > now then return {1, until_ms - now} end

redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
if redis.call('ZCARD', inflight) >= max_inflight then
  local first = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
  return {2, math.max(1, tonumber(first[2]) - now)}
end

for i = 3, #KEYS do
  local a = 3 * (i - 2) + 1
  local limit, span = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - span)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i, math.max(1, tonumber(oldest[2]) + span - now)}
  end
end

redis.call('ZADD', inflight, now + lease, holder)
redis.call('PEXPIRE', inflight, lease * 2)
for i = 3, #KEYS do
  local a = 3 * (i - 2) + 1
  redis.call('ZADD', KEYS[i], now, holder)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[a + 2]))
end
return {0, 0}
"""

# The cool-down key holds its deadline (Redis ms) and expires 1 s after it; a shorter pause never
# shortens a longer one. Returns the ms left.
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


class RedisSlotLimiter(Generic[C]):
    """The shared per-account limiter (see module docstring). Safe to share between threads."""

    provider: ClassVar[str]  # in messages: "QBO", "Xero"
    account_noun: ClassVar[str]  # in messages: "realm", "organisation"
    log_prefix: ClassVar[str]  # log events are "<log_prefix>.limiter.…"
    log_key: ClassVar[str]  # the name the account is logged under
    transient_error: ClassVar[type[Exception]]  # no slot in time, or no Redis
    wake_spread: ClassVar[float] = 0.0  # after a cool-down, wake up to this fraction of it late

    def __init__(
        self, redis_client: redis.Redis, config: C, *, key_prefix: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.config = config
        self._redis = redis_client
        self._prefix = key_prefix
        self._sleep = sleep
        self._log = logging.getLogger(type(self).__module__)
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._cooldown = redis_client.register_script(_COOLDOWN)

    # -- what a subclass decides ----------------------------------------------------------------

    def windows(self, batch: bool) -> Sequence[Window]:
        """The windows a request counts in, checked in this order."""
        raise NotImplementedError

    def refused(self, reason: str, wait: float) -> None:
        """Called on each refusal before waiting: raise to stop waiting (by default, wait on)."""

    # -- the slots -------------------------------------------------------------------------------

    def key(self, account: str, suffix: str) -> str:
        return f"{self._prefix}:{{{account}}}:{suffix}"  # hash tag: one cluster slot per account

    def try_acquire(self, account: str, holder: str, *, batch: bool = False) -> tuple[str | None, float]:
        """One attempt: ``(None, 0)`` if the slot is ours, else ``(reason, seconds_to_wait)``."""
        cfg = self.config
        windows = self.windows(batch)
        args: list[str | int] = [holder, cfg.max_in_flight, int(cfg.lease_seconds * 1000)]
        for window in windows:
            args += [window.limit, int(window.seconds * 1000), int(window.keep_seconds * 1000)]
        status, wait_ms = self._acquire(
            keys=[self.key(account, "inflight"), self.key(account, "cooldown")]
            + [self.key(account, window.suffix) for window in windows],
            args=args,
        )
        status = int(status)
        if status == 0:
            return None, 0.0
        reason = {1: "cooldown", 2: "in_flight"}.get(status) or windows[status - 3].reason
        return reason, int(wait_ms) / 1000.0

    def release(self, account: str, holder: str) -> None:
        self._redis.zrem(self.key(account, "inflight"), holder)

    def acquire(self, account: str, *, batch: bool = False) -> str:
        """Wait for a slot and return its holder id (pass it to ``release``)."""
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self.config.acquire_timeout
        while True:
            try:
                reason, wait = self.try_acquire(account, holder, batch=batch)
            except redis.RedisError as exc:
                # No limiter, no request: sending blind could break the limits for every worker.
                raise self.transient_error(
                    f"the {self.provider} request limiter is unavailable ({type(exc).__name__})"
                ) from None
            if reason is None:
                return holder
            self.refused(reason, wait)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.transient_error(
                    f"no {self.provider} request slot for the {self.account_noun} within the wait limit ({reason})"
                )
            if reason == "cooldown":
                pause = wait
                if self.wake_spread:  # everyone wakes near the deadline; spread them out a little
                    pause += random.uniform(0.0, max(0.05, wait * self.wake_spread))
            elif reason == "in_flight":
                pause = random.uniform(0.2, 1.0) * self.config.poll_interval
            else:
                # The window says exactly when the oldest request leaves it: no jitter, so the
                # budget is used to the full instead of losing a poll interval per request.
                pause = wait
            self._sleep(min(pause, remaining))

    @contextmanager
    def slot(self, account: str, *, batch: bool = False) -> Iterator[None]:
        """Block until a request may start; the slot is held for the ``with`` block."""
        holder = self.acquire(account, batch=batch)
        try:
            yield
        finally:
            try:
                self.release(account, holder)
            except redis.RedisError:
                # The lease expires on its own; losing Redis here must not mask the real outcome.
                self._log.warning("%s.limiter.release_failed %s=%s", self.log_prefix, self.log_key, account)

    def in_flight(self, account: str) -> int:
        """Live holders for the account (expired leases excluded)."""
        now_s, now_us = self._redis.time()
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        return int(self._redis.zcount(self.key(account, "inflight"), now_ms, "+inf"))

    # -- the cool-down ---------------------------------------------------------------------------

    def record_throttle(self, account: str, retry_after: float | None = None) -> float:
        """A 429 was seen: pause the account for every process. Returns the pause in seconds."""
        pause = self.config.cooldown(retry_after)
        try:
            remaining_ms = self._cooldown(keys=[self.key(account, "cooldown")], args=[int(pause * 1000)])
        except redis.RedisError:
            self._log.warning("%s.limiter.cooldown_not_shared %s=%s", self.log_prefix, self.log_key, account)
            return pause
        self._log.warning("%s.limiter.cooldown %s=%s seconds=%.1f", self.log_prefix, self.log_key, account, pause)
        return int(remaining_ms) / 1000.0

    def cooldown_remaining(self, account: str) -> float:
        """Seconds left in the account's cool-down (0 if none)."""
        ttl = self._redis.pttl(self.key(account, "cooldown"))  # the key outlives the pause by 1 s
        return max(0.0, (int(ttl) - 1000) / 1000.0) if isinstance(ttl, int) and ttl > 0 else 0.0
