"""HTTP surface of the plugin, mounted under the manifest's mount path (/integrations/quickbooks)."""

from __future__ import annotations

from flask import Blueprint

from crm_qbo_plugin.web.api import bp as api_bp
from crm_qbo_plugin.web.connect import bp as connect_bp
from crm_qbo_plugin.web.host_events import bp as host_events_bp
from crm_qbo_plugin.web.openapi import bp as openapi_bp
from crm_qbo_plugin.web.qbo_webhooks import bp as qbo_webhooks_bp


def make_blueprint() -> Blueprint:
    bp = Blueprint("crm_qbo", __name__, template_folder="templates", static_folder="static")
    bp.register_blueprint(host_events_bp)
    bp.register_blueprint(connect_bp)
    bp.register_blueprint(qbo_webhooks_bp)
    bp.register_blueprint(api_bp)
    bp.register_blueprint(openapi_bp)
    return bp
