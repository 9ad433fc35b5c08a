"""RedisLimiter on a real Redis: in-flight cap, per-minute budgets, leases, shared cool-down."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from crm_qbo_plugin.qbo import LimiterConfig, LocalLimiter, RedisLimiter, TransientError


@pytest.fixture
def rds(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def run_threads(n: int, target: object) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_in_flight_cap_across_instances(redis_url: str) -> None:
    config = LimiterConfig(max_in_flight=3, requests_per_minute=1000, poll_interval=0.01)
    limiters = [RedisLimiter(redis.Redis.from_url(redis_url), config) for _ in range(5)]  # "processes"
    lock = threading.Lock()
    current = peak = done = 0

    def work(i: list[int] = [0]) -> None:  # noqa: B006
        nonlocal current, peak, done
        with lock:
            limiter = limiters[i[0] % 5]
            i[0] += 1
        with limiter.slot("realm-1"):
            with lock:
                current += 1
                peak = max(peak, current)
            time.sleep(0.03)
            with lock:
                current -= 1
                done += 1

    run_threads(25, work)
    assert done == 25
    assert peak == 3
    assert limiters[0].in_flight("realm-1") == 0


def test_realms_are_independent(rds: redis.Redis) -> None:
    limiter = RedisLimiter(rds, LimiterConfig(max_in_flight=1, acquire_timeout=0.2))
    with limiter.slot("a"), limiter.slot("b"), pytest.raises(TransientError), limiter.slot("a"):
        pass


def test_requests_per_window_budget(rds: redis.Redis) -> None:
    """Four requests fit in the window; the fifth waits for the window and, past its timeout, is refused."""
    limiter = RedisLimiter(rds, LimiterConfig(requests_per_minute=4, window_seconds=60, acquire_timeout=0.3))
    for _ in range(4):
        with limiter.slot("r"):
            pass
    with pytest.raises(TransientError), limiter.slot("r"):
        pass


def test_batch_budget_is_separate(rds: redis.Redis) -> None:
    limiter = RedisLimiter(rds, LimiterConfig(batches_per_minute=2, window_seconds=60, acquire_timeout=0.3))
    for _ in range(2):
        with limiter.slot("r", batch=True):
            pass
    with limiter.slot("r"):  # plain requests still flow
        pass
    reason, wait = limiter.try_acquire("r", "probe", batch=True)
    assert reason == "batches_per_minute" and 0 < wait <= 60
    with pytest.raises(TransientError), limiter.slot("r", batch=True):
        pass


def test_crashed_holder_lease_expires(rds: redis.Redis) -> None:
    limiter = RedisLimiter(rds, LimiterConfig(max_in_flight=1, lease_seconds=0.3, poll_interval=0.01))
    limiter.acquire("r")  # never released: the process "died"
    started = time.monotonic()
    with limiter.slot("r"):
        pass
    assert 0.2 <= time.monotonic() - started < 2


def test_cooldown_is_shared_and_honoured(rds: redis.Redis) -> None:
    config = LimiterConfig(cooldown_seconds=0.4, cooldown_jitter=0.0)
    first, second = RedisLimiter(rds, config), RedisLimiter(rds, config)
    assert first.record_throttle("r") == pytest.approx(0.4, abs=0.01)
    assert 0.2 < second.cooldown_remaining("r") <= 0.4
    started = time.monotonic()
    with second.slot("r"):
        pass
    assert time.monotonic() - started >= 0.35
    assert second.cooldown_remaining("r") == 0.0


def test_cooldown_never_shortens(rds: redis.Redis) -> None:
    limiter = RedisLimiter(rds, LimiterConfig(cooldown_seconds=5, cooldown_jitter=0.0))
    limiter.record_throttle("r")
    short = RedisLimiter(rds, LimiterConfig(cooldown_seconds=0.1, cooldown_jitter=0.0))
    assert short.record_throttle("r") > 4
    assert limiter.cooldown_remaining("r") > 4


def test_retry_after_extends_cooldown(rds: redis.Redis) -> None:
    limiter = RedisLimiter(rds, LimiterConfig(cooldown_seconds=0.1, cooldown_jitter=0.0))
    assert limiter.record_throttle("r", retry_after=3) == pytest.approx(3, abs=0.01)


def test_local_limiter() -> None:
    limiter = LocalLimiter(LimiterConfig(max_in_flight=2, cooldown_seconds=0.2, cooldown_jitter=0.0))
    lock = threading.Lock()
    current = peak = 0

    def work() -> None:
        nonlocal current, peak
        with limiter.slot("r"):
            with lock:
                current += 1
                peak = max(peak, current)
            time.sleep(0.02)
            with lock:
                current -= 1

    run_threads(10, work)
    assert peak == 2
    limiter.record_throttle("r")
    started = time.monotonic()
    with limiter.slot("r"):
        pass
    assert time.monotonic() - started >= 0.15


def test_redis_down_is_transient() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    limiter = RedisLimiter(dead)
    with pytest.raises(TransientError), limiter.slot("r"):
        pass
    assert limiter.record_throttle("r") >= 60  # still reports the pause, just not shared
