"""TokenManager against a real Redis: single-flight refresh, re-read after the lock, rotation saved."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from crm_qbo_plugin.qbo import (
    InMemoryTokenStore,
    ReconnectRequired,
    TokenManager,
    Tokens,
    TransientError,
)


def now() -> datetime:
    return datetime.now(UTC)


class FakeRefresher:
    """Rotates like Intuit: each refresh token works once; a superseded one gives invalid_grant."""

    def __init__(self, current_refresh: str, delay: float = 0.0) -> None:
        self.valid = current_refresh
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def refresh(self, refresh_token: str) -> Tokens:
        time.sleep(self.delay)
        with self._lock:
            self.calls += 1
            if refresh_token != self.valid:
                raise ReconnectRequired("refused", code="invalid_grant", status=400)
            self.valid = f"R{self.calls + 1}"
            return Tokens(f"A{self.calls + 1}", self.valid, now() + timedelta(hours=1), now() + timedelta(days=100))


@pytest.fixture
def rds(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def expired() -> Tokens:
    return Tokens("A1", "R1", now() - timedelta(minutes=1), now() + timedelta(days=100))


def test_fresh_token_is_used_without_refresh(rds: redis.Redis) -> None:
    store = InMemoryTokenStore({"realm": Tokens("A1", "R1", now() + timedelta(hours=1))})
    refresher = FakeRefresher("R1")
    manager = TokenManager("realm", store, refresher, rds)
    assert manager.access_token() == "A1"
    assert refresher.calls == 0


def test_expiring_token_is_refreshed_proactively_and_rotation_saved(rds: redis.Redis) -> None:
    store = InMemoryTokenStore({"realm": Tokens("A1", "R1", now() + timedelta(seconds=100))})
    refresher = FakeRefresher("R1")
    manager = TokenManager("realm", store, refresher, rds, refresh_margin=300)
    assert manager.access_token() == "A2"
    stored = store.load("realm")
    assert stored is not None and stored.refresh_token == "R2"
    assert refresher.calls == 1
    assert rds.keys("*") == []  # the lock is gone, and nothing else was written


def test_concurrent_refresh_is_single_flight(rds: redis.Redis) -> None:
    store = InMemoryTokenStore({"realm": expired()})
    refresher = FakeRefresher("R1", delay=0.2)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(TokenManager("realm", store, refresher, rds).access_token())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert refresher.calls == 1
    assert results == ["A2"] * 20
    assert store.load("realm").refresh_token == "R2"  # type: ignore[union-attr]


def test_401_refresh_skips_when_another_process_already_refreshed(rds: redis.Redis) -> None:
    store = InMemoryTokenStore({"realm": Tokens("A1", "R1", now() + timedelta(hours=1))})
    refresher = FakeRefresher("R1")
    manager = TokenManager("realm", store, refresher, rds)
    store.save("realm", Tokens("A9", "R9", now() + timedelta(hours=1)))  # someone else refreshed
    assert manager.refresh_after_rejection("A1") == "A9"
    assert refresher.calls == 0
    refresher.valid = "R9"
    assert manager.refresh_after_rejection("A9") == "A2"  # QBO refused the newest: refresh
    assert refresher.calls == 1


def test_invalid_grant_raises_reconnect_once(rds: redis.Redis) -> None:
    store = InMemoryTokenStore({"realm": expired()})
    refresher = FakeRefresher("R-other")
    manager = TokenManager("realm", store, refresher, rds)
    with pytest.raises(ReconnectRequired):
        manager.access_token()
    assert refresher.calls == 1
    assert rds.keys("*") == []


def test_no_tokens_means_reconnect(rds: redis.Redis) -> None:
    with pytest.raises(ReconnectRequired):
        TokenManager("realm", InMemoryTokenStore(), FakeRefresher("R1"), rds).access_token()


def test_lock_held_elsewhere(rds: redis.Redis) -> None:
    store = InMemoryTokenStore({"realm": expired()})
    manager = TokenManager("realm", store, FakeRefresher("R1"), rds, lock_blocking_timeout=0.1)
    other = rds.lock("crm_qbo:qbo:token_refresh:realm", timeout=5)
    assert other.acquire()
    try:
        with pytest.raises(TransientError):
            manager.access_token()  # expired and cannot refresh now
        store.save("realm", Tokens("A1", "R1", now() + timedelta(seconds=60)))
        assert manager.access_token() == "A1"  # within the margin but still valid: use it
    finally:
        other.release()


def test_lock_value_is_not_a_token(rds: redis.Redis) -> None:
    store = InMemoryTokenStore({"realm": expired()})
    seen: list[bytes | None] = []

    class Peeking(FakeRefresher):
        def refresh(self, refresh_token: str) -> Tokens:
            seen.append(rds.get("crm_qbo:qbo:token_refresh:realm"))
            return super().refresh(refresh_token)

    TokenManager("realm", store, Peeking("R1"), rds).access_token()
    assert seen and seen[0] is not None
    assert b"R1" not in seen[0] and b"A1" not in seen[0]


def test_valid_token_is_cached_between_calls(rds: redis.Redis) -> None:
    class CountingStore(InMemoryTokenStore):
        loads = 0

        def load(self, realm_key: str) -> Tokens | None:
            self.loads += 1
            return super().load(realm_key)

    store = CountingStore({"realm": Tokens("A1", "R1", now() + timedelta(hours=1))})
    manager = TokenManager("realm", store, FakeRefresher("R1"), rds)
    assert [manager.access_token() for _ in range(5)] == ["A1"] * 5
    assert store.loads == 1
    store.save("realm", Tokens("A7", "R7", now() + timedelta(hours=1)))
    assert manager.refresh_after_rejection("A1") == "A7"  # a 401 bypasses the cache
    assert manager.access_token() == "A7"


def test_redis_down_during_refresh_is_transient() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    store = InMemoryTokenStore({"realm": expired()})
    refresher = FakeRefresher("R1")
    with pytest.raises(TransientError):
        TokenManager("realm", store, refresher, dead).access_token()
    assert refresher.calls == 0
