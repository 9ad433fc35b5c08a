"""The ``/_sandbox/`` control API: apps, organisations, connections without a browser, the clock,
limits, faults, latency, the webhook log and delivery, stats, reset.

Everything answers JSON; errors are ``{"error": "..."}`` with HTTP 400/404. When the sandbox has
a control token, every call must carry it in ``X-Sandbox-Token`` (else 401).
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from xero_sandbox.faults import FaultSpecError
from xero_sandbox.orgs import OrgSpecError, build_org

if TYPE_CHECKING:
    from xero_sandbox.app import Sandbox


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, default=str), status, content_type="application/json")


def _payload() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def make_control_blueprint(sandbox: Sandbox) -> Blueprint:
    bp = Blueprint("xero_sandbox_control", __name__, url_prefix="/_sandbox")

    @bp.before_request
    def _guard() -> Response | None:
        if sandbox.control_token is None:
            return None
        given = request.headers.get("X-Sandbox-Token", "")
        if not hmac.compare_digest(given, sandbox.control_token):
            return _json({"error": "missing or wrong X-Sandbox-Token"}, 401)
        return None

    @bp.post("/apps")
    def register_app() -> Response:
        try:
            app = sandbox.identity.register_app(_payload())
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(app.to_json(), 201)

    @bp.get("/apps")
    def list_apps() -> Response:
        return _json({"apps": [a.to_json() for a in sandbox.identity.apps.values()]})

    @bp.patch("/apps/<client_id>")
    def patch_app(client_id: str) -> Response:
        app = sandbox.identity.apps.get(client_id)
        if app is None:
            return _json({"error": f"unknown app {client_id}"}, 404)
        payload = _payload()
        if "webhook_url" in payload:
            app.webhook_url = payload["webhook_url"] or None
            app.webhook_status = "PENDING"  # a new URL needs a new intent-to-receive check
        if payload.get("webhook_key"):
            app.webhook_key = str(payload["webhook_key"])
        if "redirect_uris" in payload and isinstance(payload["redirect_uris"], list):
            app.redirect_uris = [str(u) for u in payload["redirect_uris"]]
        if "name" in payload:
            app.name = str(payload["name"])
        return _json(app.to_json())

    @bp.post("/apps/<client_id>/intent-to-receive")
    def intent_to_receive(client_id: str) -> Response:
        try:
            return _json(sandbox.webhooks.intent_to_receive(client_id))
        except KeyError:
            return _json({"error": f"unknown app {client_id} or no webhook_url"}, 404)

    @bp.post("/organisations")
    def create_org() -> Response:
        try:
            org = build_org(_payload(), sandbox.clock.now())
            sandbox.orgs.add(org)
        except (OrgSpecError, TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(org.settings(), 201)

    @bp.get("/organisations")
    def list_orgs() -> Response:
        return _json({"organisations": [o.settings() for o in sandbox.orgs.all()]})

    @bp.get("/organisations/<tenant_id>")
    def get_org(tenant_id: str) -> Response:
        org = sandbox.orgs.get(tenant_id)
        if org is None:
            return _json({"error": f"unknown organisation {tenant_id}"}, 404)
        return _json(org.settings())

    @bp.patch("/organisations/<tenant_id>")
    def patch_org(tenant_id: str) -> Response:
        org = sandbox.orgs.get(tenant_id)
        if org is None:
            return _json({"error": f"unknown organisation {tenant_id}"}, 404)
        payload = _payload()
        try:
            with org.lock:
                if "limits" in payload:
                    org.limits.update(payload["limits"] or {})
                if "name" in payload:
                    org.name = str(payload["name"])
                if "currencies" in payload:
                    org.currencies = [org.base_currency] + [
                        str(c).upper() for c in payload["currencies"] if str(c).upper() != org.base_currency]
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(org.settings())

    @bp.post("/connect")
    def connect() -> Response:
        payload = _payload()
        client_id = str(payload.get("client_id", ""))
        tenant_ids = payload.get("tenant_ids") or [o.tenant_id for o in sandbox.orgs.all()]
        if not isinstance(tenant_ids, list) or any(sandbox.orgs.get(str(t)) is None
                                                   for t in tenant_ids):
            return _json({"error": "tenant_ids must name existing organisations"}, 400)
        scope = str(payload.get("scope") or "openid profile email offline_access "
                    "accounting.transactions accounting.contacts accounting.settings")
        try:
            token = sandbox.identity.connect(client_id, [str(t).lower() for t in tenant_ids], scope)
        except KeyError:
            return _json({"error": f"unknown app {client_id}"}, 404)
        return _json(token)

    @bp.post("/tokens/expire")
    def expire_tokens() -> Response:
        client_id = _payload().get("client_id")
        return _json({"expired": sandbox.identity.expire_tokens(client_id)})

    @bp.post("/reset")
    def reset() -> Response:
        sandbox.reset()
        return _json({"ok": True})

    @bp.get("/clock")
    def get_clock() -> Response:
        return _json(_clock(sandbox))

    @bp.post("/clock")
    def move_clock() -> Response:
        payload = _payload()
        try:
            if "speed" in payload:
                sandbox.clock.set_speed(float(payload["speed"]))
            if "advance_seconds" in payload:
                sandbox.clock.advance(float(payload["advance_seconds"]))
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(_clock(sandbox))

    @bp.get("/limits")
    def get_limits() -> Response:
        return _json({"app_per_minute": sandbox.limiter.app_per_minute})

    @bp.post("/limits")
    def set_limits() -> Response:
        try:
            value = int(_payload()["app_per_minute"])
            if value < 1:
                raise ValueError("app_per_minute must be at least 1")
        except (KeyError, TypeError, ValueError) as exc:
            return _json({"error": f"app_per_minute: {exc}"}, 400)
        sandbox.limiter.app_per_minute = value
        return _json({"app_per_minute": value})

    @bp.get("/stats")
    def get_stats() -> Response:
        body = _stats(sandbox)
        if request.args.get("reset") in ("1", "true"):
            sandbox.stats.reset()
        return _json(body)

    @bp.delete("/stats")
    def reset_stats() -> Response:
        body = _stats(sandbox)
        sandbox.stats.reset()
        return _json(body)

    @bp.post("/faults")
    def add_fault() -> Response:
        try:
            rule = sandbox.faults.add(_payload())
        except (FaultSpecError, TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(rule.to_json(), 201)

    @bp.get("/faults")
    def list_faults() -> Response:
        return _json({"faults": [r.to_json() for r in sandbox.faults.rules()]})

    @bp.delete("/faults")
    def clear_faults() -> Response:
        sandbox.faults.clear()
        return _json({"ok": True})

    @bp.delete("/faults/<rule_id>")
    def delete_fault(rule_id: str) -> Response:
        if not sandbox.faults.remove(rule_id):
            return _json({"error": f"no fault {rule_id}"}, 404)
        return _json({"ok": True})

    @bp.get("/latency")
    def get_latency() -> Response:
        return _json({"latency_ms": sandbox.latency_ms})

    @bp.post("/latency")
    def set_latency() -> Response:
        try:
            value = float(_payload().get("latency_ms", 0))
        except (TypeError, ValueError):
            return _json({"error": "latency_ms must be a number"}, 400)
        if value < 0:
            return _json({"error": "latency_ms must not be negative"}, 400)
        sandbox.latency_ms = value
        return _json({"latency_ms": value})

    @bp.get("/webhooks")
    def webhook_log() -> Response:
        return _json(sandbox.webhooks.log())

    @bp.post("/webhooks/deliver")
    def deliver() -> Response:
        return _json(sandbox.webhooks.deliver(force=bool(_payload().get("force", False))))

    return bp


def _clock(sandbox: Sandbox) -> dict[str, Any]:
    return {"now": sandbox.clock.now().isoformat(), "speed": sandbox.clock.speed}


def _stats(sandbox: Sandbox) -> dict[str, Any]:
    body = sandbox.stats.snapshot()
    body["max_in_flight"] = sandbox.limiter.max_in_flight()
    body["token_endpoint_calls"] = sandbox.identity.token_endpoint_calls
    return body
