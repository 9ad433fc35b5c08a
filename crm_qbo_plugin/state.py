"""What the plugin keeps per Flask app, in ``app.extensions["crm_qbo"]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from flask import Flask, current_app
from rq import Queue
from sqlalchemy.engine import Engine

from crm_qbo_plugin.crypto import TokenCipher
from crm_qbo_plugin.host import CrmHost
from crm_qbo_plugin.manifest import Manifest
from crm_qbo_plugin.qbo import IntuitTokenEndpoint, RedisLimiter
from crm_qbo_plugin.settings import Settings

EXTENSION_KEY = "crm_qbo"


@dataclass
class PluginState:
    settings: Settings
    manifest: Manifest
    engine: Engine
    redis: redis.Redis
    queue: Queue
    host: CrmHost
    cipher: TokenCipher
    token_endpoint: IntuitTokenEndpoint
    limiter: RedisLimiter
    handlers: dict[str, Callable[..., None]] = field(default_factory=dict)


def get_state(app: Flask | None = None) -> PluginState:
    """The plugin state of `app`, or of the current app; a clear error if the plugin is not mounted."""
    target = app or current_app
    try:
        state: PluginState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("QuickBooksPlugin is not initialised on this app: call plugin.init_app(app, host)") from None
    return state
