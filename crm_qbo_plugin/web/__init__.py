"""HTTP surface of the plugin, mounted under the manifest's mount path (/integrations/quickbooks)."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from crm_qbo_plugin import logs
from crm_qbo_plugin.web.api import bp as api_bp
from crm_qbo_plugin.web.connect import bp as connect_bp
from crm_qbo_plugin.web.host_events import bp as host_events_bp
from crm_qbo_plugin.web.metrics import bp as metrics_bp
from crm_qbo_plugin.web.openapi import bp as openapi_bp
from crm_qbo_plugin.web.qbo_webhooks import bp as qbo_webhooks_bp
from crm_qbo_plugin.web.xero_webhooks import bp as xero_webhooks_bp


def _security_headers(response: Response) -> Response:
    """The card and its API are never framed (a framing page could click-jack Disconnect), never
    sniffed, never leak the callback's code in a Referer, and per-user answers are never cached.
    The CSP is added beside any policy the host sends: browsers enforce every one."""
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.add("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if not (request.endpoint or "").endswith(".static"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _open_log_scope() -> None:
    """Each request logs in a scope of its own; `require_user` adds the signed-in user's tenant."""
    g.crm_qbo_log_scope = logs.open_scope()


def _close_log_scope(_exc: BaseException | None) -> None:
    if (token := g.pop("crm_qbo_log_scope", None)) is not None:
        logs.close_scope(token)


def make_blueprint() -> Blueprint:
    bp = Blueprint("crm_qbo", __name__, template_folder="templates", static_folder="static")
    bp.after_request(_security_headers)
    bp.before_request(_open_log_scope)
    bp.teardown_request(_close_log_scope)
    bp.register_blueprint(host_events_bp)
    bp.register_blueprint(connect_bp)
    bp.register_blueprint(qbo_webhooks_bp)
    bp.register_blueprint(xero_webhooks_bp)
    bp.register_blueprint(api_bp)
    bp.register_blueprint(openapi_bp)
    bp.register_blueprint(metrics_bp)
    return bp
