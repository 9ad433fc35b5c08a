"""How long the client keeps trying: bounded attempts, a deadline, exponential backoff + full jitter.

Full jitter (a uniform draw in ``[0, min(cap, base * 2**n)]``) keeps many workers that failed together
from retrying together. Throttling waits are not this module's job: a 429 puts the account (a QBO
realm, a Xero organisation) in a shared cool-down that the limiter enforces before the next request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retry budget for one client call (all attempts reuse the same request id or idempotency key)."""

    max_attempts: int = 5  # total tries, the first included
    base_delay: float = 0.5
    max_delay: float = 20.0
    deadline: float = 300.0  # seconds from the first try; no new attempt starts after it

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline < 0:
            raise ValueError("delays and deadline cannot be negative")

    def backoff(self, retry_number: int) -> float:
        """Sleep before retry ``retry_number`` (1 for the first retry): full jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, retry_number - 1)))
        return random.uniform(0.0, ceiling)

    @classmethod
    def none(cls) -> RetryPolicy:
        """Never retry (the caller owns the retry loop)."""
        return cls(max_attempts=1)
