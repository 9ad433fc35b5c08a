"""Xero's rate limits on the sandbox clock: per organisation 5 in flight, 60 per rolling minute and
5,000 per rolling day; per app 10,000 per rolling minute across organisations.

A refused request does not count. ``enter`` answers the remaining-count headers Xero sends on
every response, or the ``X-Rate-Limit-Problem`` and ``Retry-After`` of a 429.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from xero_sandbox.clock import Clock
from xero_sandbox.orgs import Limits

MINUTE = 60.0
DAY = 86400.0


@dataclass
class _Window:
    minute: deque[float] = field(default_factory=deque)
    day: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    max_in_flight: int = 0


@dataclass
class Admission:
    ok: bool
    headers: dict[str, str]
    problem: str | None = None
    retry_after: int = 0


class RateLimiter:
    """Admission control for Accounting API calls; thread-safe."""

    def __init__(self, clock: Clock, app_per_minute: int = 10000) -> None:
        self.clock = clock
        self.app_per_minute = app_per_minute
        self._lock = threading.Lock()
        self._tenants: dict[str, _Window] = {}
        self._apps: dict[str, deque[float]] = {}

    def enter(self, client_id: str, tenant_id: str, limits: Limits) -> Admission:
        now = self.clock.timestamp()
        with self._lock:
            win = self._tenants.setdefault(tenant_id, _Window())
            app = self._apps.setdefault(client_id, deque())
            while win.minute and win.minute[0] <= now - MINUTE:
                win.minute.popleft()
            while win.day and win.day[0] <= now - DAY:
                win.day.popleft()
            while app and app[0] <= now - MINUTE:
                app.popleft()
            if limits.enabled:
                refusal = None
                if win.in_flight >= limits.concurrent:
                    refusal = ("concurrent", 1)
                elif len(win.day) >= limits.per_day:
                    refusal = ("day", math.ceil(win.day[0] + DAY - now))
                elif len(win.minute) >= limits.per_minute:
                    refusal = ("minute", math.ceil(win.minute[0] + MINUTE - now))
                elif len(app) >= self.app_per_minute:
                    refusal = ("appminute", math.ceil(app[0] + MINUTE - now))
                if refusal is not None:
                    problem, wait = refusal
                    return Admission(False, self._headers(win, app, limits), problem, max(1, wait))
            win.minute.append(now)
            win.day.append(now)
            app.append(now)
            win.in_flight += 1
            win.max_in_flight = max(win.max_in_flight, win.in_flight)
            return Admission(True, self._headers(win, app, limits))

    def _headers(self, win: _Window, app: deque[float], limits: Limits) -> dict[str, str]:
        return {"X-DayLimit-Remaining": str(max(0, limits.per_day - len(win.day))),
                "X-MinLimit-Remaining": str(max(0, limits.per_minute - len(win.minute))),
                "X-AppMinLimit-Remaining": str(max(0, self.app_per_minute - len(app)))}

    def leave(self, tenant_id: str) -> None:
        with self._lock:
            win = self._tenants.get(tenant_id)
            if win is not None and win.in_flight > 0:
                win.in_flight -= 1

    def max_in_flight(self) -> dict[str, int]:
        with self._lock:
            return {t: w.max_in_flight for t, w in self._tenants.items()}

    def reset(self) -> None:
        with self._lock:
            self._tenants.clear()
            self._apps.clear()
