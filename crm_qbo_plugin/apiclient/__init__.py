"""HTTP API client plumbing any accounting system's client uses: the retry policy, token refresh
coordination, rate-limit slots and cool-downs, exact JSON.

Provider-neutral: it imports nothing of the plugin (not even ``host``) and nothing of Flask, rq or
the database. ``qbo/`` and ``xero/`` build on it and keep what is theirs to themselves: token
endpoints and their answers, error classes and bodies, the numbers of their limits, headers.
"""

from __future__ import annotations

from crm_qbo_plugin.apiclient.limiter import RedisSlotLimiter, SlotConfig, Window
from crm_qbo_plugin.apiclient.retry import RetryPolicy
from crm_qbo_plugin.apiclient.tokens import (
    AccessTokenSource,
    InMemoryTokenStore,
    TokenManager,
    TokenRefresher,
    Tokens,
    TokenStore,
)

__all__ = [
    "AccessTokenSource",
    "InMemoryTokenStore",
    "RedisSlotLimiter",
    "RetryPolicy",
    "SlotConfig",
    "TokenManager",
    "TokenRefresher",
    "TokenStore",
    "Tokens",
    "Window",
]
