"""Xero's identity service: apps, the consent page, the token and revocation endpoints, connections.

Lifetimes follow Xero (all on the sandbox clock): authorization codes 5 minutes and single use,
access tokens 30 minutes, refresh tokens 60 days from issue and rotated on every refresh; the
previous refresh token stays usable for 30 minutes (Xero's grace period for a lost response),
then ``invalid_grant``. Token responses carry only the keys xero-python's ``OAuth2Token``
accepts. PKCE (``S256`` or ``plain``) is accepted, and required for apps without a secret.
"""

from __future__ import annotations

import base64
import hashlib
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

from flask import Blueprint, Response, render_template, request

from xero_sandbox.clock import Clock
from xero_sandbox.timefmt import connection_time

ACCESS_TOKEN_SECONDS = 1800
REFRESH_TOKEN_DAYS = 60
REFRESH_GRACE_SECONDS = 1800
CODE_SECONDS = 300
ID_TOKEN_SECONDS = 300

KNOWN_SCOPES = frozenset({
    "openid", "profile", "email", "offline_access",
    "accounting.transactions", "accounting.transactions.read",
    "accounting.invoices", "accounting.invoices.read",
    "accounting.payments", "accounting.payments.read",
    "accounting.contacts", "accounting.contacts.read",
    "accounting.settings", "accounting.settings.read",
    "accounting.attachments", "accounting.attachments.read",
    "accounting.reports.read", "accounting.journals.read", "accounting.budgets.read",
    "accounting.banktransactions", "accounting.banktransactions.read",
    "accounting.manualjournals", "accounting.manualjournals.read",
})


@dataclass
class App:
    client_id: str
    client_secret: str | None  # None: an "Auth Code with PKCE" app
    redirect_uris: list[str]
    name: str = "Sandbox app"
    webhook_url: str | None = None
    webhook_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    webhook_status: str = "PENDING"  # PENDING (intent to receive not passed) | OK | DISABLED

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "redirect_uris": self.redirect_uris, "name": self.name,
                "webhook_url": self.webhook_url, "webhook_key": self.webhook_key,
                "webhook_status": self.webhook_status}


@dataclass
class Connection:
    id: str
    client_id: str
    tenant_id: str
    auth_event_id: str
    created: datetime
    updated: datetime


@dataclass
class AccessToken:
    client_id: str
    scopes: frozenset[str]
    expires_at: datetime
    grant_id: str
    revoked: bool = False


@dataclass
class RefreshToken:
    client_id: str
    scopes: frozenset[str]
    issued_at: datetime
    grant_id: str
    superseded_at: datetime | None = None
    revoked: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    tenant_ids: list[str]
    auth_event_id: str
    expires_at: datetime
    challenge: str | None
    challenge_method: str
    used: bool = False


class AuthError(Exception):
    """Why a Bearer token was refused: ``TokenExpired: …`` or ``AuthenticationUnsuccessful``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class IdentityServer:
    """Apps, codes, tokens and connections; thread-safe."""

    def __init__(self, clock: Clock, tenants: Callable[[], list[tuple[str, str]]]) -> None:
        self.clock = clock
        self.tenants = tenants  # [(tenant_id, name)] for the organisation picker
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self.token_endpoint_calls = 0
        self.reset()
        self.blueprint = self._make_blueprint()

    def reset(self) -> None:
        with self._lock:
            self.apps: dict[str, App] = {}
            self.connections: dict[str, Connection] = {}
            self._access: dict[str, AccessToken] = {}
            self._refresh: dict[str, RefreshToken] = {}
            self._codes: dict[str, _Code] = {}
            self.token_endpoint_calls = 0

    # ------------------------------------------------------------------ apps and grants

    def register_app(self, spec: dict[str, Any]) -> App:
        client_id = str(spec.get("client_id") or uuid.uuid4().hex.upper())
        uris = spec.get("redirect_uris") or []
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ValueError("redirect_uris must be a list of URLs")
        secret = spec.get("client_secret", secrets.token_urlsafe(36))
        app = App(client_id=client_id, client_secret=str(secret) if secret else None,
                  redirect_uris=list(uris), name=str(spec.get("name") or "Sandbox app"),
                  webhook_url=spec.get("webhook_url") or None)
        if spec.get("webhook_key"):
            app.webhook_key = str(spec["webhook_key"])
        if spec.get("webhook_verified"):
            app.webhook_status = "OK"
        with self._lock:
            self.apps[client_id] = app
        return app

    def connect(self, client_id: str, tenant_ids: list[str], scope: str) -> dict[str, Any]:
        """Connect an app to organisations without the browser; returns a token response."""
        with self._lock:
            if client_id not in self.apps:
                raise KeyError(client_id)
            scopes = _scopes(scope)
            grant_id = str(uuid.uuid4())
            self._connect(client_id, tenant_ids, grant_id)
            return self._issue(client_id, scopes, grant_id)

    def _connect(self, client_id: str, tenant_ids: list[str], auth_event_id: str) -> None:
        now = self.clock.now()
        for tenant_id in tenant_ids:
            existing = self._connection(client_id, tenant_id)
            if existing is not None:
                existing.auth_event_id = auth_event_id
                existing.updated = now
                continue
            conn = Connection(str(uuid.uuid4()), client_id, tenant_id, auth_event_id, now, now)
            self.connections[conn.id] = conn

    def _connection(self, client_id: str, tenant_id: str) -> Connection | None:
        for conn in self.connections.values():
            if conn.client_id == client_id and conn.tenant_id == tenant_id:
                return conn
        return None

    def connected_apps(self, tenant_id: str) -> list[tuple[App, Connection]]:
        with self._lock:
            return [(self.apps[c.client_id], c) for c in self.connections.values()
                    if c.tenant_id == tenant_id and c.client_id in self.apps]

    def is_connected(self, client_id: str, tenant_id: str) -> bool:
        with self._lock:
            return self._connection(client_id, tenant_id) is not None

    def _jwt(self, claims: dict[str, Any]) -> str:
        def enc(part: bytes) -> str:
            return base64.urlsafe_b64encode(part).rstrip(b"=").decode()

        head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = enc(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{enc(mac)}"

    def _issue(self, client_id: str, scopes: frozenset[str], grant_id: str) -> dict[str, Any]:
        now = self.clock.now()
        exp = now + timedelta(seconds=ACCESS_TOKEN_SECONDS)
        access = self._jwt({"nbf": int(now.timestamp()), "exp": int(exp.timestamp()),
                            "iss": "https://identity.xero.com", "client_id": client_id,
                            "authentication_event_id": grant_id, "scope": sorted(scopes),
                            "jti": uuid.uuid4().hex})
        self._access[access] = AccessToken(client_id, scopes, exp, grant_id)
        answer: dict[str, Any] = {}
        if "openid" in scopes:
            answer["id_token"] = self._jwt({"exp": int(now.timestamp()) + ID_TOKEN_SECONDS,
                                            "aud": client_id, "sub": grant_id,
                                            "iss": "https://identity.xero.com"})
        answer.update(access_token=access, expires_in=ACCESS_TOKEN_SECONDS,
                      token_type="Bearer")
        if "offline_access" in scopes:
            refresh = secrets.token_hex(32)
            self._refresh[refresh] = RefreshToken(client_id, scopes, now, grant_id)
            answer["refresh_token"] = refresh
        answer["scope"] = " ".join(sorted(scopes))
        return answer

    def authenticate(self, header: str | None) -> AccessToken:
        """The access token behind an ``Authorization: Bearer`` header, or AuthError."""
        if not header or not header.lower().startswith("bearer "):
            raise AuthError("AuthenticationUnsuccessful")
        token = header[7:].strip()
        with self._lock:
            record = self._access.get(token)
        if record is None or record.revoked or record.client_id not in self.apps:
            raise AuthError("AuthenticationUnsuccessful")
        if self.clock.now() >= record.expires_at:
            stamp = record.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            raise AuthError(f"TokenExpired: token expired at {stamp}")
        return record

    def expire_tokens(self, client_id: str | None = None) -> int:
        """Control API: expire every live access token (of one app)."""
        now = self.clock.now() - timedelta(seconds=1)
        count = 0
        with self._lock:
            for record in self._access.values():
                if (client_id is None or record.client_id == client_id) and record.expires_at > now:
                    record.expires_at = now
                    count += 1
        return count

    # ------------------------------------------------------------------ token endpoint

    def _client(self, form: dict[str, str]) -> App | None:
        """Client auth by HTTP Basic or form fields; PKCE apps send only client_id."""
        auth = request.authorization
        client_id = auth.username if auth and auth.username else form.get("client_id", "")
        secret = auth.password if auth and auth.username else form.get("client_secret")
        app = self.apps.get(client_id or "")
        if app is None:
            return None
        if app.client_secret is None:
            return app if not secret else None
        if secret is None:
            # a confidential app may still do PKCE; the code check then needs the verifier
            return app if form.get("code_verifier") else None
        return app if hmac.compare_digest(app.client_secret, secret) else None

    def token(self) -> Response:
        with self._lock:
            self.token_endpoint_calls += 1
            form = {k: v for k, v in request.form.items()}
            grant = form.get("grant_type", "")
            app = self._client(form)
            if app is None:
                return _oauth_error("invalid_client", 400)
            now = self.clock.now()
            if grant == "authorization_code":
                code = self._codes.get(form.get("code", ""))
                if (code is None or code.used or code.client_id != app.client_id
                        or now >= code.expires_at or code.redirect_uri != form.get("redirect_uri")):
                    return _oauth_error("invalid_grant", 400)
                verifier = form.get("code_verifier")
                if code.challenge is not None:
                    if not verifier or _challenge(verifier, code.challenge_method) != code.challenge:
                        return _oauth_error("invalid_grant", 400)
                elif app.client_secret is None or verifier:
                    return _oauth_error("invalid_grant", 400)
                code.used = True
                self._connect(app.client_id, code.tenant_ids, code.auth_event_id)
                return _json(self._issue(app.client_id, code.scopes, code.auth_event_id))
            if grant == "refresh_token":
                old_token = form.get("refresh_token", "")
                old = self._refresh.get(old_token)
                if old is None or old.revoked or old.client_id != app.client_id:
                    return _oauth_error("invalid_grant", 400)
                if now >= old.issued_at + timedelta(days=REFRESH_TOKEN_DAYS):
                    return _oauth_error("invalid_grant", 400)
                if old.superseded_at is not None and \
                        now >= old.superseded_at + timedelta(seconds=REFRESH_GRACE_SECONDS):
                    return _oauth_error("invalid_grant", 400)
                if old.superseded_at is None:
                    old.superseded_at = now
                scopes = old.scopes
                if form.get("scope"):
                    asked = _scopes(form["scope"])
                    if not asked <= old.scopes:
                        return _oauth_error("invalid_scope", 400)
                return _json(self._issue(app.client_id, scopes, old.grant_id))
            if grant == "client_credentials":
                if app.client_secret is None:
                    return _oauth_error("unauthorized_client", 400)
                tenant_ids = [c.tenant_id for c in self.connections.values()
                              if c.client_id == app.client_id]
                if not tenant_ids:
                    return _oauth_error("unauthorized_client", 400)
                scopes = _scopes(form.get("scope") or "accounting.transactions accounting.contacts "
                                 "accounting.settings")
                answer = self._issue(app.client_id, scopes - {"offline_access"}, str(uuid.uuid4()))
                answer.pop("refresh_token", None)
                return _json(answer)
            return _oauth_error("unsupported_grant_type", 400)

    def revoke(self) -> Response:
        """Revoke a refresh token: the grant's tokens die and the app's connections go."""
        with self._lock:
            form = {k: v for k, v in request.form.items()}
            app = self._client(form)
            if app is None:
                return _oauth_error("invalid_client", 400)
            record = self._refresh.get(form.get("token", ""))
            if record is not None and record.client_id == app.client_id:
                self._revoke_app(app.client_id)
            return Response(b"", 200)

    def _revoke_app(self, client_id: str) -> None:
        for token in self._refresh.values():
            if token.client_id == client_id:
                token.revoked = True
        for access in self._access.values():
            if access.client_id == client_id:
                access.revoked = True
        for conn_id in [c.id for c in self.connections.values() if c.client_id == client_id]:
            del self.connections[conn_id]

    # ------------------------------------------------------------------ connections

    def list_connections(self) -> Response:
        try:
            token = self.authenticate(request.headers.get("Authorization"))
        except AuthError as exc:
            return _json(problem(401, exc.detail), 401)
        event = request.args.get("authEventId")
        with self._lock:
            rows = [
                {"id": c.id, "authEventId": c.auth_event_id, "tenantId": c.tenant_id,
                 "tenantType": "ORGANISATION", "tenantName": dict(self.tenants()).get(c.tenant_id, ""),
                 "createdDateUtc": connection_time(c.created),
                 "updatedDateUtc": connection_time(c.updated)}
                for c in self.connections.values()
                if c.client_id == token.client_id and (not event or c.auth_event_id == event)
            ]
        return _json(rows)

    def delete_connection(self, connection_id: str) -> Response:
        try:
            token = self.authenticate(request.headers.get("Authorization"))
        except AuthError as exc:
            return _json(problem(401, exc.detail), 401)
        with self._lock:
            conn = self.connections.get(connection_id)
            if conn is None or conn.client_id != token.client_id:
                return Response(b"", 404)
            del self.connections[connection_id]
        return Response(b"", 204)

    # ------------------------------------------------------------------ consent page

    def authorize(self) -> Response | str:
        params = {k: v for k, v in request.values.items()}
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            return _page_error("Invalid client", "The client_id is not known to Xero.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            return _page_error("Invalid redirect_uri",
                               "The redirect_uri is not registered for this app.")
        state = params.get("state")
        if params.get("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", "state": state})
        scope_text = params.get("scope", "")
        scopes = _scopes(scope_text)
        if not scopes or not scopes <= KNOWN_SCOPES:
            return _redirect(redirect_uri, {"error": "invalid_scope", "state": state})
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if app.client_secret is None and not challenge:
            return _redirect(redirect_uri, {"error": "invalid_request", "state": state})
        if challenge and method not in ("S256", "plain"):
            return _redirect(redirect_uri, {"error": "invalid_request", "state": state})
        if request.method == "GET":
            hidden = {k: v for k, v in params.items() if k not in ("tenant_id", "decision")}
            return render_template("authorize.html", app=app, params=hidden,
                                   tenants=self.tenants(), scopes=sorted(scopes))
        if params.get("decision") != "allow":
            return _redirect(redirect_uri, {"error": "access_denied", "state": state})
        known = dict(self.tenants())
        chosen = [t for t in request.form.getlist("tenant_id") if t in known]
        if not chosen:
            return _page_error("No organisation", "Choose an organisation to connect.")
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Code(app.client_id, redirect_uri, scopes, chosen,
                                      str(uuid.uuid4()),
                                      self.clock.now() + timedelta(seconds=CODE_SECONDS),
                                      challenge, method)
        return _redirect(redirect_uri, {"code": code, "scope": " ".join(sorted(scopes)),
                                        "state": state,
                                        "session_state": secrets.token_urlsafe(16)})

    def _make_blueprint(self) -> Blueprint:
        bp = Blueprint("xero_identity", __name__, template_folder="templates")
        bp.add_url_rule("/identity/connect/authorize", "authorize", self.authorize,
                        methods=["GET", "POST"])
        bp.add_url_rule("/authorize", "authorize_short", self.authorize, methods=["GET", "POST"])
        bp.add_url_rule("/connect/token", "token", self.token, methods=["POST"])
        bp.add_url_rule("/connect/revocation", "revocation", self.revoke, methods=["POST"])
        return bp


def problem(status: int, detail: str) -> dict[str, Any]:
    """Xero's problem-JSON body for 401/403."""
    title = {401: "Unauthorized", 403: "Forbidden"}.get(status, "Error")
    return {"Type": None, "Title": title, "Status": status, "Detail": detail,
            "Instance": str(uuid.uuid4()), "Extensions": {}}


def _scopes(text: str) -> frozenset[str]:
    return frozenset(s for s in text.replace(",", " ").split() if s)


def _challenge(verifier: str, method: str) -> str:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status, content_type="application/json; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


def _oauth_error(error: str, status: int) -> Response:
    return _json({"error": error}, status)


def _redirect(uri: str, params: dict[str, str | None]) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return Response(b"", 302, headers={"Location": f"{uri}{'&' if '?' in uri else '?'}{query}"})


def _page_error(title: str, message: str) -> Response:
    html = render_template("authorize.html", error={"title": title, "message": message})
    return Response(html, 400, content_type="text/html; charset=utf-8")
