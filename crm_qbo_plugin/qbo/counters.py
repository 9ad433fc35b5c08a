"""A few thread-safe counters about QBO traffic, for benchmarks and health pages."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields

__all__ = ["Counters"]


@dataclass
class Counters:
    """Totals since creation. Share one instance between clients to sum a whole run.

    ``observer(name, amount)``, if given, hears every addition: how the plugin feeds its shared
    metrics without this package knowing about them."""

    requests: int = 0  # HTTP requests sent to the accounting API
    retries: int = 0  # requests repeated after a retryable failure (or after a 401 refresh)
    throttled: int = 0  # 429 responses received
    auth_refreshes: int = 0  # refreshes triggered by a 401
    errors: int = 0  # calls that finally raised a QboError
    observer: Callable[[str, int], None] | None = field(default=None, repr=False, compare=False, kw_only=True)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)
        if self.observer is not None:
            self.observer(name, amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_COUNTS}


_NOT_COUNTS = {"observer", "_lock"}
