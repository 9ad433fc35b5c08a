"""The sandbox's OAuth 2.0 server: Intuit's discovery, consent, token, revoke and userinfo endpoints.

Unmodified ``intuit-oauth`` (``AuthClient(..., environment="<sandbox>/.well-known/openid_configuration")``)
and python-quickbooks run against it. Lifetimes follow Intuit (access token 1 h, refresh token
100 days, rotated on every refresh) and are measured on the sandbox clock so tests can jump ahead.
The "apps" registered here also carry the webhook settings (URL, verifier token, payload format)
that Intuit keeps on the developer portal, so the webhook dispatcher can ask who to notify.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from qbo_sandbox.clock import Clock

ACCESS_TOKEN_SECONDS = 3600
# Intuit's "100-day" rolling refresh token: the token endpoint returns
# x_refresh_token_expires_in 8726400 (which is 101 days); the sandbox honours exactly that.
REFRESH_TOKEN_SECONDS = 8_726_400
AUTH_CODE_SECONDS = 600
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = frozenset(
    {
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "intuit_name",
        ACCOUNTING_SCOPE,
        "com.intuit.quickbooks.payment",
        "com.intuit.quickbooks.payroll",
        "com.intuit.quickbooks.payroll.timetracking",
        "com.intuit.quickbooks.payroll.benefits",
        "com.intuit.quickbooks.payroll.payslip.read",
    }
)
SCOPE_LABELS = {
    ACCOUNTING_SCOPE: "Read and change your accounting data",
    "com.intuit.quickbooks.payment": "Process payments",
    "openid": "Confirm who you are",
    "profile": "See your name",
    "email": "See your email address",
    "phone": "See your phone number",
    "address": "See your address",
    "intuit_name": "See your Intuit user name",
}
WEBHOOK_FORMATS = ("legacy", "cloudevents")
INVALID_REFRESH = "Incorrect or invalid refresh token"

# The app that exists after every reset, so a demo or a benchmark can skip registration.
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_REDIRECT_URIS = (
    "http://localhost:8000/callback",
    "http://127.0.0.1:8000/callback",
    "http://localhost:5000/qbo/callback",
    "http://127.0.0.1:5000/qbo/callback",
)


@dataclass
class App:
    """A registered developer app: keys, redirect URIs and webhook settings (Intuit's portal)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    name: str = "Sandbox App"
    webhook_url: str | None = None
    verifier_token: str = ""
    webhook_format: str = "legacy"

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "name": self.name,
            "webhook_url": self.webhook_url,
            "verifier_token": self.verifier_token,
            "webhook_format": self.webhook_format,
        }


@dataclass
class Grant:
    """One authorization of an app for a company (one consent); its tokens share its fate."""

    grant_id: str
    client_id: str
    realm_id: str
    scope: str
    connected_at: datetime
    revoked: bool = False


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    realm_id: str
    scope: str
    expires_at: datetime
    used: bool = False


@dataclass
class IssuedToken:
    """An access or refresh token; ``superseded`` marks a refresh token replaced by rotation."""

    value: str
    kind: str  # "access" | "refresh"
    grant: Grant
    expires_at: datetime
    superseded: bool = False


@dataclass
class Connection:
    """An app connected to a realm, as the webhook dispatcher sees it."""

    app: App
    realm_id: str
    connected_at: datetime
    client_id: str = field(init=False)
    webhook_url: str | None = field(init=False)
    verifier_token: str = field(init=False)
    webhook_format: str = field(init=False)

    def __post_init__(self) -> None:
        self.client_id = self.app.client_id
        self.webhook_url = self.app.webhook_url
        self.verifier_token = self.app.verifier_token
        self.webhook_format = self.app.webhook_format


class OAuthError(Exception):
    """A token-endpoint error, rendered as Intuit's ``{"error", "error_description"}`` body."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON without Flask's key sorting, so bodies keep Intuit's field order."""
    response = Response(json.dumps(payload), status=status, mimetype="application/json")
    response.headers["intuit_tid"] = str(uuid.uuid4())
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _new_access_token() -> str:
    # Intuit's access tokens are long JWE strings starting "eyJ"; the sandbox's are opaque.
    return "eyJ" + secrets.token_urlsafe(96)


def _new_refresh_token(expires_at: datetime) -> str:
    # Intuit's refresh tokens look like "AB11<expiry epoch><random>".
    return f"AB11{int(expires_at.timestamp())}" + secrets.token_urlsafe(30).replace("-", "x")


class OAuthServer:
    """Issues and checks tokens on the sandbox clock; thread-safe (one lock over all state)."""

    def __init__(self, clock: Clock, list_companies: Callable[[], list[tuple[str, str]]]) -> None:
        self.clock = clock
        self.list_companies = list_companies
        self._lock = threading.RLock()
        self._apps: dict[str, App] = {}
        self._codes: dict[str, AuthCode] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._grants: dict[str, list[Grant]] = {}  # by realm
        self._token_endpoint_calls = 0
        self._issued_since_prune = 0
        self.blueprint = self._make_blueprint()
        self.reset()

    # ------------------------------------------------------------------ state and public API

    def reset(self) -> None:
        """Forget every token, code, grant and app, then re-create the default app."""
        with self._lock:
            self._apps.clear()
            self._codes.clear()
            self._tokens.clear()
            self._grants.clear()
            self._token_endpoint_calls = 0
            self.register_app(
                DEFAULT_CLIENT_ID,
                DEFAULT_CLIENT_SECRET,
                list(DEFAULT_REDIRECT_URIS),
                name="Sandbox Default App",
                verifier_token="sandbox-verifier-token",
            )

    @property
    def token_endpoint_calls(self) -> int:
        """How many requests reached the token endpoint (benchmarks check refresh discipline)."""
        with self._lock:
            return self._token_endpoint_calls

    def register_app(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str],
        *,
        name: str | None = None,
        webhook_url: str | None = None,
        verifier_token: str | None = None,
        webhook_format: str = "legacy",
    ) -> App:
        """Create or replace an app (re-registering keeps its existing grants and tokens)."""
        if webhook_format not in WEBHOOK_FORMATS:
            raise ValueError(f"webhook_format must be one of {', '.join(WEBHOOK_FORMATS)}")
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        if not redirect_uris or not all(isinstance(u, str) and u for u in redirect_uris):
            raise ValueError("redirect_uris must be a non-empty list of URLs")
        app = App(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=list(redirect_uris),
            name=name or client_id,
            webhook_url=webhook_url or None,
            verifier_token=verifier_token or secrets.token_hex(18),
            webhook_format=webhook_format,
        )
        with self._lock:
            self._apps[client_id] = app
        return app

    def get_app(self, client_id: str) -> App | None:
        with self._lock:
            return self._apps.get(client_id)

    def apps(self) -> list[App]:
        with self._lock:
            return list(self._apps.values())

    def issue_tokens(self, realm_id: str, client_id: str | None = None) -> dict[str, Any]:
        """Connect ``client_id`` (default app if None) to a realm and return a token response.

        Skips the browser for tests and benchmarks; raises KeyError for an unknown app or realm.
        """
        client_id = client_id or DEFAULT_CLIENT_ID
        with self._lock:
            if client_id not in self._apps:
                raise KeyError(f"unknown client_id {client_id!r}")
            if realm_id not in self._realm_ids():
                raise KeyError(f"unknown realm {realm_id!r}")
            grant = self._new_grant(client_id, realm_id, ACCOUNTING_SCOPE)
            return self._issue(grant)

    def authenticate(self, authorization_header_value: str | None, realm_id: str) -> str | None:
        """None if the header carries a live access token for ``realm_id``, else why not."""
        if not authorization_header_value:
            return "Authorization header missing"
        scheme, _, value = authorization_header_value.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            return "Token invalid"
        with self._lock:
            token = self._tokens.get(value)
            if token is None or token.kind != "access":
                return "Token invalid"
            if token.grant.revoked:
                return "Token revoked"
            if token.grant.realm_id != str(realm_id):
                return "Token invalid"
            if self.clock.now() >= token.expires_at:
                return f"Token expired: {value[:20]}..."
        return None

    def apps_for_realm(self, realm_id: str) -> list[Connection]:
        """Apps with a live (unrevoked) OAuth grant for the realm, earliest connection time."""
        with self._lock:
            earliest: dict[str, datetime] = {}
            for grant in self._grants.get(str(realm_id), ()):
                if grant.revoked:
                    continue
                if grant.client_id not in self._apps:
                    continue
                seen = earliest.get(grant.client_id)
                if seen is None or grant.connected_at < seen:
                    earliest[grant.client_id] = grant.connected_at
            return [
                Connection(app=self._apps[cid], realm_id=str(realm_id), connected_at=at)
                for cid, at in earliest.items()
            ]

    # ------------------------------------------------------------------ internals

    def _realm_ids(self) -> set[str]:
        return {str(realm) for realm, _name in self.list_companies()}

    def _new_grant(self, client_id: str, realm_id: str, scope: str) -> Grant:
        grant = Grant(
            grant_id=uuid.uuid4().hex,
            client_id=client_id,
            realm_id=str(realm_id),
            scope=scope,
            connected_at=self.clock.now(),
        )
        self._grants.setdefault(grant.realm_id, []).append(grant)
        return grant

    def _issue(self, grant: Grant) -> dict[str, Any]:
        """A new access + refresh token pair for the grant, in Intuit's response shape."""
        now = self.clock.now()
        access_expires = now + timedelta(seconds=ACCESS_TOKEN_SECONDS)
        refresh_expires = now + timedelta(seconds=REFRESH_TOKEN_SECONDS)
        access = IssuedToken(_new_access_token(), "access", grant, access_expires)
        refresh = IssuedToken(
            _new_refresh_token(refresh_expires), "refresh", grant, refresh_expires
        )
        self._tokens[access.value] = access
        self._tokens[refresh.value] = refresh
        self._prune(now)
        return {
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "refresh_token": refresh.value,
            "x_refresh_token_expires_in": REFRESH_TOKEN_SECONDS,
            "access_token": access.value,
        }

    def _prune(self, now: datetime) -> None:
        """Every 1000 issues, drop tokens dead for a day (bounded memory in long benchmarks)."""
        self._issued_since_prune += 1
        if self._issued_since_prune < 1000:
            return
        self._issued_since_prune = 0
        horizon = now - timedelta(days=1)
        for value in [v for v, t in self._tokens.items() if t.expires_at < horizon]:
            del self._tokens[value]

    def _client_from_request(self) -> App:
        """client_secret_basic or client_secret_post; 401 invalid_client otherwise."""
        client_id: str | None = None
        client_secret: str | None = None
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(401, "invalid_client") from None
            client_id, sep, client_secret = decoded.partition(":")
            if not sep:
                raise OAuthError(401, "invalid_client")
        else:
            client_id = request.form.get("client_id")
            client_secret = request.form.get("client_secret")
        with self._lock:
            app = self._apps.get(client_id or "")
        if (
            app is None
            or client_secret is None
            or not hmac.compare_digest(app.client_secret.encode(), client_secret.encode())
        ):
            raise OAuthError(401, "invalid_client")
        return app

    def _exchange_code(self, app: App) -> dict[str, Any]:
        code_value = request.form.get("code")
        redirect_uri = request.form.get("redirect_uri")
        if not code_value or not redirect_uri:
            raise OAuthError(400, "invalid_request", "code and redirect_uri are required")
        with self._lock:
            code = self._codes.get(code_value)
            if (
                code is None
                or code.used
                or code.client_id != app.client_id
                or self.clock.now() >= code.expires_at
            ):
                raise OAuthError(400, "invalid_grant")
            if code.redirect_uri != redirect_uri:
                raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
            code.used = True
            grant = self._new_grant(app.client_id, code.realm_id, code.scope)
            return self._issue(grant)

    def _refresh(self, app: App) -> dict[str, Any]:
        value = request.form.get("refresh_token")
        if not value:
            raise OAuthError(400, "invalid_request", "refresh_token is required")
        with self._lock:
            token = self._tokens.get(value)
            if (
                token is None
                or token.kind != "refresh"
                or token.superseded
                or token.grant.revoked
                or token.grant.client_id != app.client_id
                or self.clock.now() >= token.expires_at
            ):
                raise OAuthError(400, "invalid_grant", INVALID_REFRESH)
            # Rotation: the old value is dead from now on. Forgetting it gives the same
            # invalid_grant on reuse and keeps a refresh-heavy benchmark's memory flat.
            token.superseded = True
            del self._tokens[value]
            return self._issue(token.grant)

    def _revoke(self, app: App, value: str) -> None:
        """Revoking either token disconnects the app from the company (the whole grant)."""
        with self._lock:
            token = self._tokens.get(value)
            if token is not None and token.grant.client_id == app.client_id:
                token.grant.revoked = True

    # ------------------------------------------------------------------ HTTP

    def _make_blueprint(self) -> Blueprint:
        bp = Blueprint("qbo_oauth", __name__, template_folder="templates")

        def discovery() -> Response:
            base = request.host_url.rstrip("/")
            return _json(
                {
                    "issuer": f"{base}/op/v1",
                    "authorization_endpoint": f"{base}/connect/oauth2",
                    "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
                    "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
                    "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
                    "jwks_uri": f"{base}/op/v1/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "email", "profile", "address", "phone"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "client_secret_basic",
                    ],
                    "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
                }
            )

        discovery_paths = (
            "/.well-known/openid_configuration",
            "/.well-known/openid_configuration/",
            "/.well-known/openid_sandbox_configuration",
            "/.well-known/openid_sandbox_configuration/",
        )
        for number, path in enumerate(discovery_paths):
            bp.add_url_rule(path, f"discovery_{number}", discovery)

        @bp.get("/op/v1/jwks")
        def jwks() -> Response:
            # No id_token is ever issued, so there is no signing key to publish.
            return _json({"keys": []})

        @bp.route("/connect/oauth2", methods=["GET", "POST"])
        def authorize() -> Any:
            return self._authorize()

        @bp.post("/oauth2/v1/tokens/bearer")
        def token() -> Response:
            with self._lock:
                self._token_endpoint_calls += 1
            no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
            try:
                app = self._client_from_request()
                grant_type = request.form.get("grant_type")
                if grant_type == "authorization_code":
                    body = self._exchange_code(app)
                elif grant_type == "refresh_token":
                    body = self._refresh(app)
                elif not grant_type:
                    raise OAuthError(400, "invalid_request", "grant_type is required")
                else:
                    raise OAuthError(400, "unsupported_grant_type")
            except OAuthError as exc:
                return _json(exc.body(), exc.status, no_store)
            return _json(body, 200, no_store)

        @bp.post("/v2/oauth2/tokens/revoke")
        def revoke() -> Response:
            try:
                app = self._client_from_request()
            except OAuthError as exc:
                return _json(exc.body(), exc.status)
            payload = request.get_json(silent=True)
            value = payload.get("token") if isinstance(payload, dict) else None
            value = value or request.form.get("token")
            if not value:
                return _json(
                    {"error": "invalid_request", "error_description": "token is required"}, 400
                )
            self._revoke(app, str(value))
            # Empty 200 like Intuit; an unknown token is not an error (RFC 7009 2.2).
            return Response(b"", status=200)

        @bp.get("/v1/openid_connect/userinfo")
        def userinfo() -> Response:
            header = request.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            with self._lock:
                token = self._tokens.get(value.strip())
                ok = (
                    scheme.lower() == "bearer"
                    and token is not None
                    and token.kind == "access"
                    and not token.grant.revoked
                    and self.clock.now() < token.expires_at
                )
                realm = token.grant.realm_id if token else ""
            if not ok:
                return _json({"error": "invalid_token"}, 401, {"WWW-Authenticate": "Bearer"})
            return _json(
                {
                    "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"qbo-sandbox-user:{realm}")),
                    "email": "sandbox.user@example.com",
                    "emailVerified": True,
                    "givenName": "Sandbox",
                    "familyName": "User",
                    "phoneNumber": "+1 555-0100",
                    "phoneNumberVerified": False,
                }
            )

        @bp.route("/_sandbox/apps", methods=["GET", "POST"])
        def sandbox_apps() -> Response:
            if request.method == "GET":
                return _json({"apps": [a.to_json() for a in self.apps()]})
            payload = request.get_json(silent=True)
            if not isinstance(payload, dict):
                return _json({"error": "a JSON object is required"}, 400)
            uris = payload.get("redirect_uris")
            try:
                app = self.register_app(
                    str(payload.get("client_id") or ""),
                    str(payload.get("client_secret") or ""),
                    uris if isinstance(uris, list) else [],
                    name=payload.get("name"),
                    webhook_url=payload.get("webhook_url"),
                    verifier_token=payload.get("verifier_token"),
                    webhook_format=payload.get("webhook_format") or "legacy",
                )
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
            return _json(app.to_json(), 201)

        @bp.post("/_sandbox/tokens")
        def sandbox_tokens() -> Response:
            payload = request.get_json(silent=True)
            if not isinstance(payload, dict) or not payload.get("realm_id"):
                return _json({"error": "realm_id is required"}, 400)
            try:
                body = self.issue_tokens(str(payload["realm_id"]), payload.get("client_id"))
            except KeyError as exc:
                return _json({"error": str(exc.args[0])}, 404)
            return _json(body)

        return bp

    def _authorize(self) -> Any:
        """The consent page (GET) and its form submission (POST)."""
        params = request.form if request.method == "POST" else request.args
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        state = params.get("state", "")
        app = self.get_app(client_id)
        # Like Intuit: a bad client or redirect URI is an error page, never a redirect.
        if app is None:
            return self._error_page("Invalid client", "The client_id is not a registered app.")
        if redirect_uri not in app.redirect_uris:
            return self._error_page(
                "Invalid redirect_uri",
                "The redirect_uri does not match any redirect URI registered for this app.",
            )

        def back(first: tuple[str, str], *rest: tuple[str, str]) -> BaseResponse:
            """302 to the app with Intuit's parameter order: code|error, state, realmId."""
            query = [first, *([("state", state)] if state else []), *rest]
            separator = "&" if "?" in redirect_uri else "?"
            return redirect(redirect_uri + separator + urlencode(query), code=302)

        if params.get("response_type") != "code":
            return back(("error", "unsupported_response_type"))
        scopes = params.get("scope", "").split()
        if ACCOUNTING_SCOPE not in scopes or any(s not in KNOWN_SCOPES for s in scopes):
            return back(("error", "invalid_scope"))
        companies = [(str(r), n) for r, n in self.list_companies()]

        if request.method == "GET":
            return render_template(
                "consent.html",
                error=None,
                app=app,
                companies=companies,
                scope_labels=[SCOPE_LABELS.get(s, f"Use {s}") for s in scopes],
                params={
                    "client_id": client_id,
                    "response_type": "code",
                    "scope": " ".join(scopes),
                    "redirect_uri": redirect_uri,
                    "state": state,
                },
            )

        if params.get("decision") != "allow":
            return back(("error", "access_denied"))
        realm_id = params.get("realm_id", "")
        if realm_id not in {r for r, _ in companies}:
            return self._error_page("Unknown company", "Choose one of the listed companies.")
        code = AuthCode(
            code=f"AB11{secrets.token_urlsafe(32)}",
            client_id=client_id,
            redirect_uri=redirect_uri,
            realm_id=realm_id,
            scope=" ".join(scopes),
            expires_at=self.clock.now() + timedelta(seconds=AUTH_CODE_SECONDS),
        )
        with self._lock:
            now = self.clock.now()
            for stale in [c for c, v in self._codes.items() if v.used or v.expires_at <= now]:
                del self._codes[stale]
            self._codes[code.code] = code
        return back(("code", code.code), ("realmId", realm_id))

    def _error_page(self, title: str, message: str) -> tuple[str, int]:
        return render_template("consent.html", error={"title": title, "message": message}), 400
