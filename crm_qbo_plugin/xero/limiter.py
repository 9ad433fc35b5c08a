"""Per-organisation request limiting shared by every worker through Redis, with Xero's numbers.

Xero allows, per organisation, 5 requests in flight, 60 a minute and 5,000 a day (1,000 on the
Starter tier), and answers 429 with ``Retry-After`` and ``X-Rate-Limit-Problem`` past them
(xero-api.md §6). ``RedisLimiter`` is ``apiclient.limiter``'s in-flight leases, rolling windows
and shared cool-down with those budgets and a day window. It also keeps the last
``X-DayLimit-Remaining`` Xero sent, so the card can warn while the daily budget runs low (Xero's
count includes other apps' calls, ours does not).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import redis

from crm_qbo_plugin.apiclient.limiter import RedisSlotLimiter, Window
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


class RedisLimiter(RedisSlotLimiter[LimiterConfig]):
    """The shared per-organisation limiter: ``apiclient``'s slots with Xero's day and minute
    windows, a spent day budget raised at once, and Xero's last ``X-DayLimit-Remaining``; thread-safe."""

    provider = "Xero"
    account_noun = "organisation"
    log_prefix = "xero"
    log_key = "tenant_id"
    transient_error = TransientError

    def __init__(self, redis_client: redis.Redis, config: LimiterConfig | None = None, *,
                 key_prefix: str = "crm_qbo:xero:limit",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(redis_client, config or LimiterConfig(), key_prefix=key_prefix, sleep=sleep)

    def windows(self, batch: bool) -> Sequence[Window]:
        cfg = self.config
        return (Window("day", "day", cfg.requests_per_day, cfg.day_seconds,
                       keep_seconds=cfg.day_seconds + cfg.minute_seconds),
                Window("minute", "minute", cfg.requests_per_minute, cfg.minute_seconds,
                       keep_seconds=cfg.minute_seconds * 2))

    def refused(self, reason: str, wait: float) -> None:
        if reason == "day":
            # The day budget frees in hours: fail now, the job runner reschedules.
            raise ThrottledError("the organisation's daily Xero budget is spent",
                                 retry_after=wait, problem="day", status=None)

    def record_remaining(self, tenant_id: str, day_remaining: int) -> None:
        try:
            self._redis.set(self.key(tenant_id, "day_remaining"), int(day_remaining), ex=2 * 86400)
        except redis.RedisError:
            logger.warning("xero.limiter.remaining_not_kept tenant_id=%s", tenant_id)

    def day_remaining(self, tenant_id: str) -> int | None:
        """The last ``X-DayLimit-Remaining`` Xero sent for the organisation (None: not seen)."""
        value = self._redis.get(self.key(tenant_id, "day_remaining"))
        return int(value) if value is not None else None

    def day_frees_at(self, tenant_id: str) -> datetime | None:
        """When the oldest call of the last day (ours) leaves the rolling day window, so the budget
        starts to refill (None: no call of ours in the window)."""
        oldest = self._redis.zrange(self.key(tenant_id, "day"), 0, 0, withscores=True)
        if not oldest:
            return None
        return datetime.fromtimestamp(float(oldest[0][1]) / 1000 + self.config.day_seconds, UTC)
