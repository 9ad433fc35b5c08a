"""QuickBooks Online API client: HTTP, OAuth token refresh, limits, errors, query building.

Imports nothing from the rest of ``crm_qbo_plugin`` but ``apiclient`` (the plumbing it shares with
``xero``; its names used here are re-exported with QBO's settings) and nothing of Flask, rq or the
database, so it can be tested (and shipped) on its own. The plugin implements ``TokenStore`` over
its database.
"""

from __future__ import annotations

from crm_qbo_plugin.apiclient.retry import RetryPolicy
from crm_qbo_plugin.qbo.batch import MAX_BATCH_ITEMS, BatchItem, BatchResult
from crm_qbo_plugin.qbo.client import MINOR_VERSION, QboClient, new_request_id
from crm_qbo_plugin.qbo.counters import Counters
from crm_qbo_plugin.qbo.errors import (
    AuthenticationError,
    AuthorizationError,
    BooksClosedError,
    DuplicateDocNumberError,
    DuplicateNameError,
    FaultDetail,
    NotFoundError,
    QboError,
    ReconnectRequired,
    StaleObjectError,
    ThrottledError,
    TransientError,
    UnexpectedResponseError,
    ValidationError,
)
from crm_qbo_plugin.qbo.limiter import Limiter, LimiterConfig, LocalLimiter, RedisLimiter
from crm_qbo_plugin.qbo.oauth import IntuitTokenEndpoint, discovery_document
from crm_qbo_plugin.qbo.query import (
    Condition,
    build_count,
    build_select,
    eq,
    ge,
    gt,
    in_,
    le,
    like,
    lt,
    quote,
)
from crm_qbo_plugin.qbo.timestamps import format_changed_since, parse_date, parse_timestamp
from crm_qbo_plugin.qbo.tokens import (
    AccessTokenSource,
    InMemoryTokenStore,
    StaticTokenSource,
    TokenManager,
    TokenRefresher,
    Tokens,
    TokenStore,
)

__all__ = [
    "MAX_BATCH_ITEMS",
    "MINOR_VERSION",
    "AccessTokenSource",
    "AuthenticationError",
    "AuthorizationError",
    "BatchItem",
    "BatchResult",
    "BooksClosedError",
    "Condition",
    "Counters",
    "DuplicateDocNumberError",
    "DuplicateNameError",
    "FaultDetail",
    "InMemoryTokenStore",
    "IntuitTokenEndpoint",
    "Limiter",
    "LimiterConfig",
    "LocalLimiter",
    "NotFoundError",
    "QboClient",
    "QboError",
    "ReconnectRequired",
    "RedisLimiter",
    "RetryPolicy",
    "StaleObjectError",
    "StaticTokenSource",
    "ThrottledError",
    "TokenManager",
    "TokenRefresher",
    "TokenStore",
    "Tokens",
    "TransientError",
    "UnexpectedResponseError",
    "ValidationError",
    "build_count",
    "build_select",
    "discovery_document",
    "eq",
    "format_changed_since",
    "ge",
    "gt",
    "in_",
    "le",
    "like",
    "lt",
    "new_request_id",
    "parse_date",
    "parse_timestamp",
    "quote",
]
