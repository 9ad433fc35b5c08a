"""Request counters for tests and benchmarks: by tenant, endpoint and status, plus 429s."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.by_tenant: Counter[str] = Counter()
            self.by_endpoint: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.throttled = 0
            self.faults_injected = 0

    def record(self, tenant_id: str | None, endpoint: str, status: int) -> None:
        with self._lock:
            self.total += 1
            if tenant_id:
                self.by_tenant[tenant_id] += 1
            self.by_endpoint[endpoint] += 1
            self.by_status[str(status)] += 1
            if status == 429:
                self.throttled += 1

    def fault_injected(self) -> None:
        with self._lock:
            self.faults_injected += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.total, "by_tenant": dict(self.by_tenant),
                    "by_endpoint": dict(self.by_endpoint), "by_status": dict(self.by_status),
                    "throttled": self.throttled, "faults_injected": self.faults_injected}
