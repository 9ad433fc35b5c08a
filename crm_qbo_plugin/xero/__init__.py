"""Xero Accounting API client: OAuth 2.0 (code flow with PKCE, rotating refresh tokens, revoke,
connections), the calls the sync makes, Xero's limits shared across workers, typed errors and the
webhook intake's Xero half.

A sibling of ``crm_qbo_plugin.qbo``: it imports nothing of the plugin but ``host``, ``apiclient``
(the plumbing both share) and itself, and nothing of Flask, rq or the database. The plugin implements ``TokenStore`` over its database.

OAuth library: ``oauthlib`` — the protocol core of ``requests-oauthlib`` — for PKCE, token request
bodies and the parsing of token answers and OAuth errors, with the HTTP done by ``requests`` (timed,
as in ``qbo/oauth.py``). Not ``requests_oauthlib.OAuth2Session``, which keeps the PKCE verifier and
token on a session object (the connect flow spans two web requests; tokens live in the database)
and refuses http URLs without a process-wide environment switch; not xero-python's ``TokenApi``,
which has no code exchange or PKCE, takes its URLs from process-wide class attributes and sleeps in
urllib3 on a 429 (``oauth.py`` says more).
"""

from __future__ import annotations

from crm_qbo_plugin.apiclient.retry import RetryPolicy
from crm_qbo_plugin.xero.client import (
    MAX_ELEMENTS,
    AccessTokenSource,
    Saved,
    XeroClient,
    idempotency_key,
    new_request_id,
)
from crm_qbo_plugin.xero.errors import (
    NotFoundError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
    UnexpectedResponseError,
    ValidationError,
    XeroError,
)
from crm_qbo_plugin.xero.limiter import Limiter, LimiterConfig, RedisLimiter
from crm_qbo_plugin.xero.notices import (
    Delivery,
    Event,
    NoticeError,
    intent_to_receive_status,
    parse_delivery,
    signature_ok,
)
from crm_qbo_plugin.xero.oauth import SYNC_SCOPES, AuthorizationRequest, Connection, XeroIdentity
from crm_qbo_plugin.xero.timestamps import format_if_modified_since, parse_date, parse_timestamp
from crm_qbo_plugin.xero.tokens import (
    InMemoryTokenStore,
    TokenManager,
    TokenRefresher,
    Tokens,
    TokenStore,
)

__all__ = [
    "MAX_ELEMENTS",
    "SYNC_SCOPES",
    "AccessTokenSource",
    "AuthorizationRequest",
    "Connection",
    "Delivery",
    "Event",
    "InMemoryTokenStore",
    "Limiter",
    "LimiterConfig",
    "NoticeError",
    "NotFoundError",
    "ReconnectRequired",
    "RedisLimiter",
    "RetryPolicy",
    "Saved",
    "ThrottledError",
    "TokenManager",
    "TokenRefresher",
    "TokenStore",
    "Tokens",
    "TransientError",
    "UnexpectedResponseError",
    "ValidationError",
    "XeroClient",
    "XeroError",
    "XeroIdentity",
    "format_if_modified_since",
    "idempotency_key",
    "intent_to_receive_status",
    "new_request_id",
    "parse_date",
    "parse_delivery",
    "parse_timestamp",
    "signature_ok",
]
