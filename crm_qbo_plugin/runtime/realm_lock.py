"""One inbound worker per realm at a time: QBO's changes for a company are applied in order.

A Redis lock with a TTL (the scheduler's compare-and-set lock), renewed as work progresses; a killed
worker's lock simply runs out, so the realm is never stuck.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from crm_qbo_plugin.runtime.locks import LeaderLock

LOCK_TTL_SECONDS = 120.0


def realm_lock(connection: redis.Redis, realm_id: str) -> LeaderLock:
    return LeaderLock(connection, key=f"crm-qbo:inbound:realm:{realm_id}", ttl_seconds=LOCK_TTL_SECONDS)


@contextmanager
def holding(connection: redis.Redis, realm_id: str, wait_seconds: float = 0.0,
            poll_seconds: float = 0.05) -> Iterator[LeaderLock | None]:
    """Yield the realm's lock if it could be taken within `wait_seconds`, else None; released after."""
    lock = realm_lock(connection, realm_id)
    deadline = time.monotonic() + wait_seconds
    acquired = lock.try_acquire_or_renew()
    while not acquired and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        acquired = lock.try_acquire_or_renew()
    try:
        yield lock if acquired else None
    finally:
        if acquired:
            lock.release()
