"""Xero identity: the code flow with PKCE, refresh, revoke and ``/connections`` (xero-api.md §1).

Built on ``oauthlib`` (the protocol engine under ``requests-oauthlib``, already installed through
intuit-oauth) for the PKCE verifier and challenge, the token request body and the parsing of token
answers and OAuth errors; the HTTP is a direct, timed ``requests`` call as in ``qbo/oauth.py``.
``requests_oauthlib.OAuth2Session`` itself is not used: it keeps the PKCE verifier and the token on
a session object, while the connect flow spans two web requests and the tokens live in the
database, and it refuses plain-http URLs unless a process-wide ``OAUTHLIB_INSECURE_TRANSPORT`` is
set (the local Xero is http). xero-python's ``TokenApi`` is not used either: it has no code
exchange and no PKCE, takes its URLs from class attributes shared by the whole process, raises
``TypeError`` on any unexpected key in a token answer, and sleeps inside urllib3 on a 429.

Client authentication is HTTP Basic for apps with a secret; a PKCE app ("Auth Code with PKCE")
has no secret and sends ``client_id`` + ``code_verifier`` in the form.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests
from oauthlib.oauth2 import WebApplicationClient
from oauthlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    OAuth2Error,
    UnauthorizedClientError,
)

from crm_qbo_plugin.xero.errors import (
    ReconnectRequired,
    TransientError,
    UnexpectedResponseError,
    XeroError,
)
from crm_qbo_plugin.xero.tokens import Tokens

__all__ = ["SYNC_SCOPES", "AuthorizationRequest", "Connection", "XeroIdentity"]

logger = logging.getLogger(__name__)

LOGIN_URL = "https://login.xero.com"
IDENTITY_URL = "https://identity.xero.com"
API_URL = "https://api.xero.com"
# Classic scopes (apps created before 2 March 2026); newer apps use the granular ones (§1).
SYNC_SCOPES = ("offline_access", "accounting.contacts", "accounting.settings",
               "accounting.transactions")


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the person, and what to keep (server side) until the callback."""

    url: str
    state: str
    code_verifier: str


@dataclass(frozen=True)
class Connection:
    """One row of ``GET /connections``: ``id`` is the connection, ``tenant_id`` the organisation."""

    id: str
    tenant_id: str
    tenant_type: str
    tenant_name: str
    auth_event_id: str


class XeroIdentity:
    """Talks to Xero's identity service (or the local one: pass its URL for all three bases)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str | None,
        *,
        login_url: str = LOGIN_URL,
        identity_url: str = IDENTITY_URL,
        api_url: str = API_URL,
        session: requests.Session | None = None,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client_id = client_id
        self._secret = client_secret or None
        self._authorize_url = f"{login_url.rstrip('/')}/identity/connect/authorize"
        self._token_url = f"{identity_url.rstrip('/')}/connect/token"
        self._revoke_url = f"{identity_url.rstrip('/')}/connect/revocation"
        self._connections_url = f"{api_url.rstrip('/')}/connections"
        self._http = session or requests.Session()
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"XeroIdentity(client_id={self._client_id!r}, token_url={self._token_url!r})"

    # -- the code flow ----------------------------------------------------------------------------

    def authorization_request(self, redirect_uri: str, scopes: Sequence[str] = SYNC_SCOPES,
                              state: str | None = None) -> AuthorizationRequest:
        """The consent URL with a fresh state and an S256 PKCE challenge (sent for every app:
        it also protects a confidential app's code from interception)."""
        oauth = WebApplicationClient(self._client_id)
        verifier = oauth.create_code_verifier(64)
        challenge = oauth.create_code_challenge(verifier, "S256")
        state = state or secrets.token_urlsafe(24)
        query = urlencode({"response_type": "code", "client_id": self._client_id,
                           "redirect_uri": redirect_uri, "scope": " ".join(scopes),
                           "state": state, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        return AuthorizationRequest(f"{self._authorize_url}?{query}", state, verifier)

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        """Trade the callback's ``code`` for tokens (single use, minutes-long)."""
        oauth = WebApplicationClient(self._client_id)
        body = oauth.prepare_request_body(code=code, redirect_uri=redirect_uri,
                                          code_verifier=code_verifier,
                                          include_client_id=self._secret is None)
        return self._token(body, oauth)

    def refresh(self, refresh_token: str) -> Tokens:
        """Rotate: the answer's refresh token replaces ``refresh_token`` (which Xero keeps
        accepting for 30 minutes, then ``invalid_grant`` → ``ReconnectRequired``)."""
        oauth = WebApplicationClient(self._client_id)
        # oauthlib adds client_id to a refresh body only when it is passed in (PKCE apps need it)
        extra = {"client_id": self._client_id} if self._secret is None else {}
        body = oauth.prepare_refresh_body(refresh_token=refresh_token, **extra)
        return self._token(body, oauth)

    def revoke(self, refresh_token: str) -> None:
        """Revoke the refresh token; Xero removes every connection it authorised."""
        form = {"token": refresh_token}
        if self._secret is None:
            form["client_id"] = self._client_id
        response = self._post(self._revoke_url, form)
        if response.status_code != 200:
            raise self._oauth_error(response)

    # -- connections --------------------------------------------------------------------------------

    def connections(self, access_token: str) -> list[Connection]:
        """The organisations this authorisation may reach (pick the tenant id from these)."""
        response = self._send("GET", self._connections_url, access_token)
        if response.status_code in (401, 403):
            raise ReconnectRequired("Xero refused the access token for /connections",
                                    status=response.status_code)
        if response.status_code != 200:
            raise TransientError("Xero /connections failed", status=response.status_code)
        try:
            rows = response.json()
            return [Connection(str(r["id"]), str(r["tenantId"]), str(r.get("tenantType") or ""),
                               str(r.get("tenantName") or ""), str(r.get("authEventId") or ""))
                    for r in rows]
        except (ValueError, TypeError, KeyError):
            raise UnexpectedResponseError("Xero /connections answered an unexpected body") from None

    def delete_connection(self, access_token: str, connection_id: str) -> bool:
        """Disconnect one organisation; False if Xero no longer knew the connection."""
        response = self._send("DELETE", f"{self._connections_url}/{connection_id}", access_token)
        if response.status_code == 204:
            return True
        if response.status_code == 404:
            return False
        if response.status_code in (401, 403):
            raise ReconnectRequired("Xero refused the access token", status=response.status_code)
        raise TransientError("Xero could not delete the connection", status=response.status_code)

    # -- internals ------------------------------------------------------------------------------------

    def _send(self, method: str, url: str, access_token: str) -> requests.Response:
        try:
            return self._http.request(method, url, timeout=self._timeout, headers={
                "Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        except requests.RequestException as exc:
            raise TransientError(f"could not reach Xero: {type(exc).__name__}") from None

    def _post(self, url: str, form: dict[str, str] | str) -> requests.Response:
        auth = (self._client_id, self._secret) if self._secret else None
        try:
            return self._http.post(url, data=form, auth=auth, timeout=self._timeout, headers={
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded"})
        except requests.RequestException as exc:
            raise TransientError(f"could not reach the Xero token endpoint: {type(exc).__name__}") \
                from None

    def _token(self, body: str, oauth: WebApplicationClient) -> Tokens:
        issued = self._clock()
        response = self._post(self._token_url, body)
        if response.status_code != 200:
            error = self._oauth_error(response)
            logger.warning("xero.auth.token_failed status=%s error=%s", response.status_code,
                           type(error).__name__)
            raise error
        try:
            oauth.parse_request_body_response(response.text)  # validates the answer's shape
        except OAuth2Error as exc:
            raise UnexpectedResponseError(f"Xero's token answer is not valid: {exc.error}") from None
        payload: dict[str, Any] = response.json()
        return Tokens.from_token_response(payload, now=issued)

    @staticmethod
    def _oauth_error(response: requests.Response) -> XeroError:
        if response.status_code == 429 or response.status_code >= 500:
            return TransientError("the Xero token endpoint is unavailable", status=response.status_code)
        try:
            WebApplicationClient("").parse_request_body_response(response.text)
        except (InvalidGrantError, UnauthorizedClientError):
            return ReconnectRequired("Xero refused the grant (invalid_grant): reconnect Xero",
                                     status=response.status_code)
        except InvalidClientError:
            return ReconnectRequired("Xero refused the app's credentials (invalid_client)",
                                     status=response.status_code)
        except OAuth2Error as exc:
            return UnexpectedResponseError(f"Xero's token endpoint refused: {exc.error}",
                                           status=response.status_code)
        except ValueError:
            pass
        return UnexpectedResponseError("Xero's token endpoint answered an unexpected body",
                                       status=response.status_code)
