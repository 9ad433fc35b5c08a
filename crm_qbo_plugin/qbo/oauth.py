"""Intuit's token endpoint: refresh a token pair, with the discovery document cached per process.

intuit-oauth's ``AuthClient`` fetches the discovery document in its constructor, keeps token state
on a shared ``requests.Session`` and sets no timeouts, so the refresh is a direct, timed POST to the
endpoint the discovery document names (``grant_type=refresh_token``, HTTP Basic client auth), the
same request ``AuthClient.refresh`` sends. ``environment`` follows intuit-oauth: ``production``,
``sandbox``, or the URL of a discovery document (how ``qbo_sandbox`` is reached).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from crm_qbo_plugin.qbo import jsoncodec
from crm_qbo_plugin.qbo.errors import ThrottledError, TransientError, error_from_oauth
from crm_qbo_plugin.qbo.tokens import Tokens

__all__ = ["DISCOVERY_URLS", "IntuitTokenEndpoint", "discovery_document", "discovery_url"]

logger = logging.getLogger(__name__)

DISCOVERY_URLS = {
    "production": "https://developer.intuit.com/.well-known/openid_configuration/",
    "sandbox": "https://developer.intuit.com/.well-known/openid_sandbox_configuration/",
}

_cache: dict[str, dict[str, Any]] = {}
_cache_lock = threading.Lock()


def discovery_url(environment: str) -> str:
    """Map an intuit-oauth style environment name (or a URL) to a discovery document URL."""
    name = environment.strip().lower()
    if name in ("production", "prod"):
        return DISCOVERY_URLS["production"]
    if name in ("sandbox", "sand"):
        return DISCOVERY_URLS["sandbox"]
    if not name.startswith(("http://", "https://")):
        raise ValueError(f"environment must be production, sandbox or a discovery URL, not {environment!r}")
    return environment.strip()


def discovery_document(
    environment: str, *, session: requests.Session | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """The discovery document, fetched once per process and URL (it names the token endpoint)."""
    url = discovery_url(environment)
    with _cache_lock:
        cached = _cache.get(url)
        if cached is not None:
            return cached
        try:
            response = (session or requests).get(url, timeout=timeout, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise TransientError(f"could not fetch the OAuth discovery document: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise TransientError(f"OAuth discovery document answered HTTP {response.status_code}")
        document = response.json()
        if not isinstance(document, dict) or "token_endpoint" not in document:
            raise TransientError("OAuth discovery document has no token_endpoint")
        _cache[url] = document
        return document


def clear_discovery_cache() -> None:
    """Forget cached discovery documents (tests that start a new sandbox on a new port)."""
    with _cache_lock:
        _cache.clear()


class IntuitTokenEndpoint:
    """Refreshes tokens at Intuit (or the sandbox). Thread-safe; one per process is enough."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        environment: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._environment = environment
        self._session = session
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"IntuitTokenEndpoint(client_id={self._client_id!r}, environment={self._environment!r})"

    @property
    def token_endpoint(self) -> str:
        return str(discovery_document(self._environment, session=self._session, timeout=self._timeout)["token_endpoint"])

    def refresh(self, refresh_token: str) -> Tokens:
        """POST ``grant_type=refresh_token``; ``invalid_grant`` raises ``ReconnectRequired``."""
        return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token}, refresh_token)

    def exchange_code(self, code: str, redirect_uri: str) -> Tokens:
        """POST ``grant_type=authorization_code`` for the code the OAuth callback received."""
        return self._grant({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}, code)

    def revoke(self, token: str) -> None:
        """Revoke a refresh (or access) token at Intuit; what intuit-oauth's ``revoke`` sends."""
        url = str(discovery_document(self._environment, session=self._session, timeout=self._timeout)["revocation_endpoint"])
        try:
            response = (self._session or requests).post(
                url, json={"token": token}, auth=(self._client_id, self._client_secret),
                headers={"Accept": "application/json"}, timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise TransientError(f"could not reach the QuickBooks revoke endpoint: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise error_from_oauth(response.status_code, response.content, intuit_tid=response.headers.get("intuit_tid"),
                                   secrets=(token, self._client_secret))

    def _grant(self, form: dict[str, str], secret: str) -> Tokens:
        url = self.token_endpoint
        issued = self._clock()
        http = self._session or requests
        try:
            response = http.post(
                url,
                data=form,
                auth=(self._client_id, self._client_secret),
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.Timeout:
            raise TransientError("the QuickBooks token endpoint timed out") from None
        except requests.RequestException as exc:
            raise TransientError(f"could not reach the QuickBooks token endpoint: {type(exc).__name__}") from None
        tid = response.headers.get("intuit_tid")
        refresh_token = form.get("refresh_token")
        secrets = (secret, self._client_secret)
        if response.status_code != 200:
            error = error_from_oauth(response.status_code, response.content, intuit_tid=tid, secrets=secrets)
            if isinstance(error, ThrottledError):
                error.retry_after = _retry_after(response)
            logger.warning(
                "qbo.auth.refresh_failed status=%s error=%s intuit_tid=%s",
                response.status_code,
                error.code,
                tid,
            )
            raise error
        try:
            payload = jsoncodec.loads(response.content)
        except ValueError:
            raise TransientError("the token endpoint answered with invalid JSON", intuit_tid=tid) from None
        return Tokens.from_token_response(payload, now=issued, previous_refresh_token=refresh_token)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None
