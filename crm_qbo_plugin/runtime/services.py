"""The plugin's services for one host app: settings, database, Redis, queue, host, cipher, limiter.

A plain object, no Flask: the extension builds one per app and keeps it in
``app.extensions["crm_qbo"]``; everything below the web layer receives it as an argument. Job entry
points, which rq calls with ids only, ask `current()` — the extension registers how to find the
services of the app whose context the worker runs in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from sqlalchemy.engine import Engine

from crm_qbo_plugin.crypto import TokenCipher
from crm_qbo_plugin.host import CrmHost
from crm_qbo_plugin.manifest import Manifest
from crm_qbo_plugin.qbo import IntuitTokenEndpoint, RedisLimiter
from crm_qbo_plugin.runtime.queue import JobQueue
from crm_qbo_plugin.settings import Settings
from crm_qbo_plugin.xero import RedisLimiter as XeroLimiter
from crm_qbo_plugin.xero import XeroIdentity


@dataclass
class Services:
    settings: Settings
    manifest: Manifest
    engine: Engine
    redis: redis.Redis
    queue: JobQueue
    host: CrmHost
    cipher: TokenCipher
    token_endpoint: IntuitTokenEndpoint
    limiter: RedisLimiter
    # Xero: its identity service (None when the host offers no Xero) and its per-organisation limiter.
    xero_identity: XeroIdentity | None = None
    xero_limiter: XeroLimiter | None = None
    # The push handler per provider, then per host event type (outbound/handlers.py); tests swap one in.
    handlers: dict[str, dict[str, Callable[..., None]]] = field(default_factory=dict)


_provider: Callable[[], Services] | None = None


def provide(provider: Callable[[], Services]) -> None:
    """Register how `current()` finds the services (the extension does, at init_app)."""
    global _provider
    _provider = provider


def current() -> Services:
    """The services of the app the caller runs in (for job entry points, which get ids only)."""
    if _provider is None:
        raise RuntimeError("QuickBooksPlugin is not initialised: call plugin.init_app(app, host)")
    return _provider()
