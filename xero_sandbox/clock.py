"""The sandbox's clock: real time, optionally sped up, and movable by the control API.

Token expiry, throttling windows, CDC look-back and webhook retry schedules all read this clock,
so a test can jump an hour ahead and a benchmark can run Xero's per-minute limits in seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Sandbox time = the real time at start + elapsed real time x speed + manual advances."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self._lock = threading.Lock()
        self._speed = speed
        self._anchor_real = time.monotonic()
        self._anchor_time = start or datetime.now(UTC)
        if self._anchor_time.tzinfo is None:
            raise ValueError("the clock's start time must be timezone-aware")

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        """The current sandbox time, timezone-aware (UTC)."""
        with self._lock:
            elapsed = (time.monotonic() - self._anchor_real) * self._speed
            return self._anchor_time + timedelta(seconds=elapsed)

    def timestamp(self) -> float:
        """The current sandbox time as POSIX seconds (for rate windows)."""
        return self.now().timestamp()

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward (never back: Xero's time does not go backwards)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._anchor_time += timedelta(seconds=seconds)
        return self.now()

    def set_speed(self, speed: float) -> None:
        """Change how fast sandbox time runs from now on, keeping the current reading."""
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        current = self.now()
        with self._lock:
            self._anchor_real = time.monotonic()
            self._anchor_time = current
            self._speed = speed
