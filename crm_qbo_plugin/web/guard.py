"""Who is asking: the host's signed-in user (never a tenant id from the request), a per-session
nonce that binds OAuth state to this browser, and a CSRF token for the card's forms."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

from crm_qbo_plugin import logs
from crm_qbo_plugin.host import HostUser
from crm_qbo_plugin.state import get_state

NONCE_KEY = "crm_qbo_nonce"
CSRF_KEY = "crm_qbo_csrf"


def require_user() -> HostUser:
    user = get_state().host.current_user()
    if user is None:
        abort(401, description="Sign in to the CRM to manage the accounting integration.")
    logs.annotate(tenant=user.tenant)
    return user


def session_nonce(create: bool = False) -> str | None:
    nonce = session.get(NONCE_KEY)
    if nonce is None and create:
        nonce = session[NONCE_KEY] = secrets.token_urlsafe(24)
    return nonce


def csrf_token() -> str:
    token = session.get(CSRF_KEY)
    if token is None:
        token = session[CSRF_KEY] = secrets.token_urlsafe(24)
    return str(token)


def same_token(expected: object, sent: str) -> bool:
    """Constant-time comparison as bytes (compare_digest refuses non-ASCII text with a TypeError)."""
    return bool(expected) and hmac.compare_digest(str(expected).encode(), sent.encode("utf-8", "surrogatepass"))


def check_csrf_header() -> None:
    """JSON API writes: the session's token in X-CSRF-Token (a cross-site page cannot set it)."""
    sent = request.headers.get("X-CSRF-Token", "")
    expected = session.get(CSRF_KEY)
    if not same_token(expected, sent):
        abort(403, description="Missing or stale X-CSRF-Token header; read it from any API response and retry.")


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get(CSRF_KEY)
    if not same_token(expected, sent):
        abort(400, description="The form expired. Reload the page and try again.")
