"""A Redis leader lock, so exactly one scheduler is effective however many are started.

The holder renews it well inside its TTL; a holder that dies simply stops renewing, and the next
candidate takes over once the TTL runs out. Renew and release only touch the lock if it is still
ours (compare-and-set in Lua), so a paused process cannot steal back or drop a successor's lock.
"""

from __future__ import annotations

import uuid

import redis

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaderLock:
    def __init__(self, connection: redis.Redis, key: str = "crm-qbo:scheduler:leader", ttl_seconds: float = 30.0) -> None:
        self._redis = connection
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = uuid.uuid4().hex
        self._renew = connection.register_script(_RENEW)
        self._release = connection.register_script(_RELEASE)

    def try_acquire_or_renew(self) -> bool:
        """True while we hold the lock: renew it if ours, take it if free."""
        if self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
            return True
        return bool(self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])

    def holder(self) -> str | None:
        value = self._redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value
