"""The host app the benchmark's plugin processes run: the reference CRM with the plugin mounted.

``crm-qbo --app bench.hostapp:create_app worker|serve`` builds it from CRM_QBO_* / REFERENCE_CRM_*
in the environment. One benchmark-only change: when the sandbox's clock runs BENCH_CLOCK_SPEED
times faster than real time, QBO's and Xero's minutes are that much shorter, so the plugin's
limiter windows and its QBO 429 cool-down are scaled by the same factor (budgets unchanged). Without this the
plugin would pace itself against real minutes while the sandbox counts sped-up ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from crm_qbo_plugin.qbo import LimiterConfig, RedisLimiter
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.xero import LimiterConfig as XeroLimiterConfig
from crm_qbo_plugin.xero import RedisLimiter as XeroLimiter
from reference_crm.app import create_app as create_reference_app

SPEED_VARIABLE = "BENCH_CLOCK_SPEED"


def scaled_limits(speed: float) -> LimiterConfig:
    base = LimiterConfig.from_env()
    return LimiterConfig(
        max_in_flight=base.max_in_flight,
        requests_per_minute=base.requests_per_minute,
        batches_per_minute=base.batches_per_minute,
        window_seconds=base.window_seconds / speed,
        lease_seconds=base.lease_seconds,
        cooldown_seconds=base.cooldown_seconds / speed,
        cooldown_jitter=base.cooldown_jitter,
        acquire_timeout=base.acquire_timeout,
        poll_interval=min(base.poll_interval, 0.05 / speed),
    )


def scaled_xero_limits(speed: float) -> XeroLimiterConfig:
    base = XeroLimiterConfig()
    return XeroLimiterConfig(minute_seconds=base.minute_seconds / speed, day_seconds=base.day_seconds / speed,
                             poll_interval=min(base.poll_interval, 0.05 / speed))


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = create_reference_app(config)
    speed = float(os.environ.get(SPEED_VARIABLE) or (config or {}).get(SPEED_VARIABLE) or 1.0)
    if speed != 1.0:
        state = get_state(app)
        state.limiter = RedisLimiter(state.redis, scaled_limits(speed))
        state.xero_limiter = XeroLimiter(state.redis, scaled_xero_limits(speed))
    return app
