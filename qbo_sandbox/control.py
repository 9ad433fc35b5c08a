"""The ``/_sandbox/`` control API (companies, clock, stats, faults, latency, reset).

Apps, tokens and webhook delivery are served by the OAuth and webhook blueprints.
Everything answers JSON; errors are ``{"error": "..."}`` with HTTP 400/404.

The control API hands out app secrets and tokens for any company: with a control token set, every
``/_sandbox/`` request must carry it in ``X-Sandbox-Token`` (401 otherwise). A sandbox bound beyond
loopback must have one (see ``__main__``); on loopback it is optional.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from qbo_sandbox.faults import FaultSpecError
from qbo_sandbox.seed import CompanySpecError, build_company
from qbo_sandbox.timefmt import envelope_time

if TYPE_CHECKING:
    from qbo_sandbox.app import Sandbox


TOKEN_HEADER = "X-Sandbox-Token"
TOKEN_ENV = "QBO_SANDBOX_CONTROL_TOKEN"
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; any other name or address may be reachable."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def control_guard(token: str) -> Callable[[], Response | None]:
    """A before_request hook refusing ``/_sandbox/`` requests without the control token."""
    expected = token.encode()

    def _guard() -> Response | None:
        if not request.path.startswith("/_sandbox/"):
            return None
        sent = request.headers.get(TOKEN_HEADER, "").encode("utf-8", "surrogatepass")
        if hmac.compare_digest(sent, expected):
            return None
        return _json({"error": f"the control API needs the sandbox's control token in {TOKEN_HEADER}"}, 401)

    return _guard


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status, content_type="application/json")


def _payload() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def make_control_blueprint(sandbox: Sandbox) -> Blueprint:
    bp = Blueprint("qbo_sandbox_control", __name__)

    @bp.post("/_sandbox/companies")
    def create_company() -> Response:
        try:
            company = build_company(_payload(), sandbox.clock.now())
            sandbox.companies.add(company)
        except (CompanySpecError, ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"realmId": company.realm_id, **company.settings()}, 201)

    @bp.get("/_sandbox/companies")
    def list_companies() -> Response:
        return _json({"companies": [c.settings() for c in sandbox.companies.all()]})

    @bp.get("/_sandbox/companies/<realm_id>")
    def get_company(realm_id: str) -> Response:
        company = sandbox.companies.get(realm_id)
        if company is None:
            return _json({"error": f"unknown realm {realm_id}"}, 404)
        return _json(company.settings())

    @bp.patch("/_sandbox/companies/<realm_id>")
    def patch_company(realm_id: str) -> Response:
        company = sandbox.companies.get(realm_id)
        if company is None:
            return _json({"error": f"unknown realm {realm_id}"}, 404)
        payload = _payload()
        try:
            with company.lock:
                if "books_closed_date" in payload:
                    value = payload["books_closed_date"]
                    company.books_closed_date = date.fromisoformat(value) if value else None
                if "limits" in payload:
                    company.limits.update(payload["limits"] or {})
                if "name_conflicts" in payload:
                    company.name_conflicts = bool(payload["name_conflicts"])
                if "name_write_ms" in payload:
                    company.name_write_ms = float(payload["name_write_ms"] or 0)
                prefs = company.preferences()
                if "custom_txn_numbers" in payload or "multicurrency" in payload:
                    record = company.records["Preferences"]["1"]
                    data = {**record.data,
                            "SalesFormsPrefs": {**prefs["SalesFormsPrefs"]},
                            "CurrencyPrefs": {**prefs["CurrencyPrefs"]}}
                    if "custom_txn_numbers" in payload:
                        data["SalesFormsPrefs"]["CustomTxnNumbers"] = bool(payload["custom_txn_numbers"])
                    if "multicurrency" in payload:
                        data["CurrencyPrefs"]["MultiCurrencyEnabled"] = bool(payload["multicurrency"])
                    record.data = data
                if "name" in payload:
                    company.name = str(payload["name"])
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(company.settings())

    @bp.post("/_sandbox/reset")
    def reset() -> Response:
        sandbox.reset()
        return _json({"ok": True})

    @bp.get("/_sandbox/clock")
    def get_clock() -> Response:
        return _json(_clock_state(sandbox))

    @bp.post("/_sandbox/clock")
    def move_clock() -> Response:
        payload = _payload()
        try:
            if "speed" in payload:
                sandbox.clock.set_speed(float(payload["speed"]))
            if "advance_seconds" in payload:
                sandbox.clock.advance(float(payload["advance_seconds"]))
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(_clock_state(sandbox))

    @bp.get("/_sandbox/stats")
    def get_stats() -> Response:
        body = _stats(sandbox)
        if request.args.get("reset") in ("1", "true", "yes"):
            sandbox.stats.reset()
            sandbox.throttle.reset_stats()
        return _json(body)

    @bp.delete("/_sandbox/stats")
    def reset_stats() -> Response:
        body = _stats(sandbox)
        sandbox.stats.reset()
        sandbox.throttle.reset_stats()
        return _json(body)

    @bp.post("/_sandbox/faults")
    def add_fault() -> Response:
        try:
            rule = sandbox.faults.add(_payload(), envelope_time(sandbox.clock.now(),
                                                                _any_tz(sandbox)))
        except (FaultSpecError, TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"id": rule.id, **rule.to_json()}, 201)

    @bp.get("/_sandbox/faults")
    def list_faults() -> Response:
        return _json({"faults": [r.to_json() for r in sandbox.faults.rules()]})

    @bp.delete("/_sandbox/faults")
    def clear_faults() -> Response:
        sandbox.faults.clear()
        return _json({"ok": True})

    @bp.delete("/_sandbox/faults/<rule_id>")
    def delete_fault(rule_id: str) -> Response:
        if not sandbox.faults.remove(rule_id):
            return _json({"error": f"no fault {rule_id}"}, 404)
        return _json({"ok": True})

    @bp.get("/_sandbox/latency")
    def get_latency() -> Response:
        return _json({"latency_ms": sandbox.latency_ms})

    @bp.post("/_sandbox/latency")
    def set_latency() -> Response:
        try:
            value = float(_payload().get("latency_ms", 0))
        except (TypeError, ValueError):
            return _json({"error": "latency_ms must be a number"}, 400)
        if value < 0:
            return _json({"error": "latency_ms must not be negative"}, 400)
        sandbox.latency_ms = value
        return _json({"latency_ms": value})

    return bp


def _any_tz(sandbox: Sandbox) -> Any:
    from zoneinfo import ZoneInfo

    from qbo_sandbox.timefmt import DEFAULT_TZ

    return ZoneInfo(DEFAULT_TZ)


def _clock_state(sandbox: Sandbox) -> dict[str, Any]:
    return {"now": sandbox.clock.now().isoformat(), "speed": sandbox.clock.speed}


def _stats(sandbox: Sandbox) -> dict[str, Any]:
    body = sandbox.stats.snapshot()
    body["max_in_flight"] = sandbox.throttle.max_in_flight()
    body["token_endpoint_calls"] = sandbox.oauth.token_endpoint_calls
    return body
