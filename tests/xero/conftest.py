"""The plugin's Xero client wired to a fresh xero_sandbox (real HTTP, real Redis).

The sandbox's clock runs a billion times slower than real time, so nothing moves during a test
unless it advances the clock (``/_sandbox/clock``): limit windows and grace periods are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from crm_qbo_plugin.xero import (
    InMemoryTokenStore,
    LimiterConfig,
    RedisLimiter,
    RetryPolicy,
    TokenManager,
    Tokens,
    XeroClient,
    XeroIdentity,
)
from tests.xero_sandbox.support import CLIENT_ID, CLIENT_SECRET, connect, create_org, register_app

CONNECTION = "location-1"


@dataclass
class Xero:
    url: str
    tenant_id: str
    identity: XeroIdentity
    store: InMemoryTokenStore
    tokens: TokenManager
    limiter: RedisLimiter
    client: XeroClient
    redis: redis.Redis

    def new_worker(self) -> XeroClient:
        """The client another worker process would build (its own token manager, no cache)."""
        self.tokens = TokenManager(CONNECTION, self.store, self.identity, self.redis)
        return XeroClient(self.tenant_id, self.tokens, limiter=self.limiter,
                          base_url=f"{self.url}/api.xro/2.0", retry=RetryPolicy.none())

    def client_with(self, config: LimiterConfig) -> tuple[XeroClient, RedisLimiter]:
        limiter = RedisLimiter(self.redis, config)
        return XeroClient(self.tenant_id, self.tokens, limiter=limiter,
                          base_url=f"{self.url}/api.xro/2.0", retry=RetryPolicy.none()), limiter


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    from xero_sandbox import create_app
    from xero_sandbox.clock import Clock
    from xero_sandbox.server import serve_in_thread

    app = create_app(Clock(speed=1e-9),
                     aggregation_seconds=0)
    with serve_in_thread(app) as url:
        yield url


def identity_for(url: str) -> XeroIdentity:
    return XeroIdentity(CLIENT_ID, CLIENT_SECRET, login_url=url, identity_url=url, api_url=url)


@pytest.fixture
def xero(sandbox_url: str, redis_url: str) -> Iterator[Xero]:
    """One NZ organisation, the app connected to it, and the plugin's client for it."""
    tenant_id = create_org(sandbox_url, country="NZ")
    register_app(sandbox_url)
    identity = identity_for(sandbox_url)
    store = InMemoryTokenStore({CONNECTION: Tokens.from_token_response(
        connect(sandbox_url, tenant_ids=[tenant_id]))})
    client_redis = redis.Redis.from_url(redis_url)
    manager = TokenManager(CONNECTION, store, identity, client_redis)
    limiter = RedisLimiter(client_redis)
    client = XeroClient(tenant_id, manager, limiter=limiter, base_url=f"{sandbox_url}/api.xro/2.0",
                        retry=RetryPolicy.none())
    yield Xero(sandbox_url, tenant_id, identity, store, manager, limiter, client, client_redis)
    client_redis.close()
