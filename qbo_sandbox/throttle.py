"""QBO's per-realm throttles: requests per rolling minute, requests in flight, batches per minute.

Windows are measured on the sandbox clock, so a sped-up clock runs QBO's minute in less time.
A refused request does not count toward the window (it never reached QBO's API tier).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from qbo_sandbox.clock import Clock
from qbo_sandbox.companies import Limits

WINDOW_SECONDS = 60.0


@dataclass
class _RealmState:
    requests: deque[float] = field(default_factory=deque)
    batches: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    max_in_flight: int = 0


class Throttle:
    """Admission control for ``/v3`` requests; thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._realms: dict[str, _RealmState] = {}

    def enter(self, realm_id: str, limits: Limits, is_batch: bool = False) -> bool:
        """Admit a request (True) or refuse it with 429 (False). Pair a True with :meth:`leave`."""
        now = self.clock.timestamp()
        horizon = now - WINDOW_SECONDS
        with self._lock:
            state = self._realms.setdefault(realm_id, _RealmState())
            while state.requests and state.requests[0] <= horizon:
                state.requests.popleft()
            while state.batches and state.batches[0] <= horizon:
                state.batches.popleft()
            if limits.enabled and (
                state.in_flight >= limits.concurrent
                or len(state.requests) >= limits.per_minute
                or (is_batch and len(state.batches) >= limits.batch_per_minute)
            ):
                return False
            state.requests.append(now)
            if is_batch:
                state.batches.append(now)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            return True

    def leave(self, realm_id: str) -> None:
        with self._lock:
            state = self._realms.get(realm_id)
            if state is not None and state.in_flight > 0:
                state.in_flight -= 1

    def max_in_flight(self) -> dict[str, int]:
        with self._lock:
            return {realm: s.max_in_flight for realm, s in self._realms.items()}

    def reset_stats(self) -> None:
        with self._lock:
            for state in self._realms.values():
                state.max_in_flight = state.in_flight

    def reset(self) -> None:
        with self._lock:
            self._realms.clear()
