"""A few thread-safe counters about QBO traffic, for benchmarks and health pages."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

__all__ = ["Counters"]


@dataclass
class Counters:
    """Totals since creation. Share one instance between clients to sum a whole run."""

    requests: int = 0  # HTTP requests sent to the accounting API
    retries: int = 0  # requests repeated after a retryable failure (or after a 401 refresh)
    throttled: int = 0  # 429 responses received
    auth_refreshes: int = 0  # refreshes triggered by a 401
    errors: int = 0  # calls that finally raised a QboError
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
