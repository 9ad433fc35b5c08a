"""The plugin's JSON API under /integrations/quickbooks/api/ — what the card is built on.

The tenant always comes from the host's signed-in user; a record of another tenant is simply not
found (404). Input is validated with the schemas in api_schemas; the OpenAPI document is served at
/integrations/quickbooks/api/openapi.json.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from crm_qbo_plugin.events import has_control_characters
from crm_qbo_plugin.host import RecordLabel, describe_records, search_records
from crm_qbo_plugin.inbound.enqueue import request_sync
from crm_qbo_plugin.onboarding.lifecycle import get_connection
from crm_qbo_plugin.onboarding.setup import (
    SettingsRejected,
    income_accounts,
    setup_of,
    tax_codes,
    update_settings,
)
from crm_qbo_plugin.outbound.records import RecordNotFound, ignore_record, retry_record
from crm_qbo_plugin.outbound.sweeper import resend_waiting
from crm_qbo_plugin.qbo import QboError, ReconnectRequired
from crm_qbo_plugin.runtime.status import check_authorisation
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.activity import last_synced_at, recent_activity
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.links import DOC_NUMBER, get_link
from crm_qbo_plugin.store.record_pages import HOST_KIND, page_records
from crm_qbo_plugin.store.records import recent_runs, record_counts
from crm_qbo_plugin.store.tables import ConnectionStatus, Link
from crm_qbo_plugin.web import api_schemas as s
from crm_qbo_plugin.web import wording
from crm_qbo_plugin.web.day_budget import day_budget_warning
from crm_qbo_plugin.web.guard import check_csrf_header, csrf_token, require_user
from crm_qbo_plugin.xero import ReconnectRequired as XeroReconnectRequired
from crm_qbo_plugin.xero import XeroError

bp = Blueprint("crm_qbo_api", __name__, url_prefix="/api")


def _problem(status: int, message: str, fields: dict[str, Any] | None = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    return jsonify(body), status


def _books(tenant: str) -> wording.Books:
    conn = get_connection(get_state(), tenant)
    return wording.books_of(conn.provider if conn is not None else None)


def _load(schema: Schema, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError({"_body": ["must be a JSON object"]})
    loaded: dict[str, Any] = schema.load(data)
    return loaded


@bp.after_request
def _csrf_header(response: Response) -> Response:
    """Every API answer carries the session's CSRF token, for the writes that need it back."""
    if get_state().host.current_user() is not None:
        response.headers["X-CSRF-Token"] = csrf_token()
    return response


@bp.before_request
def _writes_need_csrf() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        require_user()
        check_csrf_header()


@bp.before_request
def _ids_without_control_characters() -> tuple[Response, int] | None:
    """No record has an id with control characters (host events refuse them), and PostgreSQL cannot
    even compare one holding NUL: such a record is simply not found, before any query."""
    if any(isinstance(v, str) and has_control_characters(v) for v in (request.view_args or {}).values()):
        return _problem(404, "no such record")
    return None


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return _problem(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> tuple[Response, int]:
    return _problem(400, "invalid request", exc.normalized_messages())


@bp.errorhandler(SettingsRejected)
def _rejected(exc: SettingsRejected) -> tuple[Response, int]:
    return _problem(exc.status, "settings not changed", dict(exc.fields))


@bp.errorhandler(ReconnectRequired)
@bp.errorhandler(XeroReconnectRequired)
def _reconnect(exc: ReconnectRequired | XeroReconnectRequired) -> tuple[Response, int]:
    user = require_user()
    check_authorisation(get_state(), get_connection(get_state(), user.tenant))
    return _problem(409, f"{_books(user.tenant).name} needs to be reconnected")


@bp.errorhandler(QboError)
@bp.errorhandler(XeroError)
def _books_failed(exc: QboError | XeroError) -> tuple[Response, int]:
    code = getattr(exc, "code", None) or type(exc).__name__
    return _problem(502, f"{_books(require_user().tenant).name} could not answer ({code}); try again shortly")


@bp.get("/status")
def status() -> Response:
    user = require_user()
    state = get_state()
    conn = check_authorisation(state, get_connection(state, user.tenant))
    profile = state.host.location_profile(user.tenant)
    setup = setup_of(conn, profile)
    counts = record_counts(state, user.tenant)
    books = wording.books_of(conn.provider if conn else None)
    body = {
        "provider": conn.provider if conn else None,
        "books": books.name,
        "status": conn.status if conn else "disconnected",
        "company_name": conn.company_name if conn else None,
        "country": conn.country if conn else None,
        "home_currency": conn.home_currency if conn else None,
        "multicurrency": bool(conn and conn.multicurrency),
        "tax_model": conn.tax_model if conn else None,
        "connected_at": conn.connected_at if conn else None,
        "last_webhook_at": conn.last_webhook_at if conn else None,
        "refresh_expires_at": conn.refresh_expires_at if conn else None,
        "last_error": wording.speak(conn.last_error, books) if conn and conn.last_error else None,
        "day_budget_warning": day_budget_warning(state, conn),
        "setup": {**setup.__dict__, "complete": setup.complete},
        "counts": counts,
        "needs_attention": sum(counts.get(k, 0) for k in ("failed", "conflict", "not_synced")),
        "last_synced_at": last_synced_at(state.engine, user.tenant),
        "crm_currency": profile.currency if profile else None,
        "crm_taxes": [{"id": t.id, "name": t.name, "rate_percent": str(t.rate_percent)} for t in (profile.taxes if profile else ())],
    }
    return jsonify(s.StatusSchema().dump(body))


@bp.get("/settings")
def get_settings() -> Response:
    user = require_user()
    state = get_state()
    return jsonify(s.SettingsSchema().dump(card_settings(get_connection(state, user.tenant))))


@bp.patch("/settings")
def patch_settings() -> Response:
    user = require_user()
    changes = _load(s.SettingsSchema(), request.get_json(silent=True))
    return jsonify(s.SettingsSchema().dump(update_settings(get_state(), user.tenant, changes)))


@bp.get("/accounts")
def accounts() -> Response | tuple[Response, int]:
    user = require_user()
    state = get_state()
    conn = check_authorisation(state, get_connection(state, user.tenant))
    if conn is None:
        return _problem(409, "connect QuickBooks or Xero first")
    if conn.status == ConnectionStatus.NEEDS_RECONNECT.value:
        return _problem(409, f"{wording.books_of(conn.provider).name} needs to be reconnected")
    return jsonify(s.AccountSchema(many=True).dump(income_accounts(state, conn)))


@bp.get("/tax-codes")
def list_tax_codes() -> Response | tuple[Response, int]:
    user = require_user()
    state = get_state()
    conn = check_authorisation(state, get_connection(state, user.tenant))
    if conn is None:
        return _problem(409, "connect QuickBooks or Xero first")
    if conn.status == ConnectionStatus.NEEDS_RECONNECT.value:
        return _problem(409, f"{wording.books_of(conn.provider).name} needs to be reconnected")
    return jsonify(s.TaxCodeSchema(many=True).dump(tax_codes(state, conn)))


@bp.get("/sync-runs")
def sync_runs() -> Response:
    user = require_user()
    query = _load(s.RunQuerySchema(), request.args.to_dict())
    return jsonify(s.SyncRunSchema(many=True).dump(recent_runs(get_state(), user.tenant, query["limit"])))


@bp.get("/history")
def history() -> Response:
    """Sync work in plain language, both directions, newest first; each failure names its record
    and says what to do."""
    user = require_user()
    state = get_state()
    query = _load(s.HistoryQuerySchema(), request.args.to_dict())
    entries = recent_activity(state.engine, user.tenant, query["limit"])
    books = _books(user.tenant)
    wanted: dict[str, list[str]] = {}
    for entry in entries:
        for failure in entry.failures:
            wanted.setdefault(failure.kind, []).append(failure.crm_id)
    labels = {kind: describe_records(state.host, user.tenant, kind, ids) for kind, ids in wanted.items()}
    body = []
    for entry in entries:
        failures = []
        for f in entry.failures:
            label = labels.get(f.kind, {}).get(f.crm_id) or wording.fallback_label(f.kind, f.crm_id)
            failures.append({"kind": f.kind, "crm_id": f.crm_id, "title": " · ".join(p for p in (label.title, label.subtitle) if p),
                             "url": label.url, "error": wording.speak(wording.plain_error(f.error), books),
                             "advice": wording.advice(f.error, books)})
        body.append({"at": entry.at, "sent": dict(entry.sent), "received": entry.received, "imported": entry.imported,
                     "failures": failures, "errors": [wording.speak(e, books) for e in entry.errors],
                     "summary": wording.summary(entry.sent, entry.received, entry.imported, len(failures), len(entry.errors), books)})
    return jsonify(s.HistorySchema(many=True).dump(body))


def _readable(rows: list[Link], tenant: str) -> list[dict[str, Any]]:
    """Each record as its users know it: the host's label and page, its page in the books, and the
    actions that make sense for its status."""
    state = get_state()
    by_kind: dict[str, list[str]] = {}
    for row in rows:
        by_kind.setdefault(HOST_KIND.get(row.kind, row.kind), []).append(row.crm_id)
    labels = {kind: describe_records(state.host, tenant, kind, ids) for kind, ids in by_kind.items()}
    conn = get_connection(state, tenant)
    provider = conn.provider if conn is not None else "quickbooks"
    books = wording.books_of(provider)
    readable = []
    for row in rows:
        label: RecordLabel = labels.get(HOST_KIND.get(row.kind, row.kind), {}).get(row.crm_id) or wording.fallback_label(row.kind, row.crm_id)
        qbo_title, qbo_url = wording.qbo_link(state.settings.environment, row.kind, row.qbo_id,
                                              (row.detail or {}).get(DOC_NUMBER), provider)
        dumped = row.model_dump()
        if row.last_error:
            dumped["last_error"] = wording.speak(row.last_error, books)
        readable.append({**dumped, "label": label.__dict__, "qbo_title": qbo_title, "qbo_url": qbo_url,
                         "actions": wording.ACTIONS.get(row.status, []),
                         "advice": wording.advice(row.last_error or "", books) if row.status in ("failed", "conflict") else None})
    return readable


@bp.get("/records")
def records() -> Response:
    """One page of records, newest first; X-Total-Count is how many match in all (the tab's true total)."""
    user = require_user()
    state = get_state()
    query = _load(s.RecordQuerySchema(), request.args.to_dict())
    text = (query.get("q") or "").strip()
    matches = search_records(state.host, user.tenant, text) if text else {}
    page = page_records(state.engine, user.tenant, status=query.get("status"), kind=query.get("kind"), text=text or None,
                        host_matches=matches, limit=query["limit"], offset=query["offset"])
    response = jsonify(s.RecordSchema(many=True).dump(_readable(page.rows, user.tenant)))
    response.headers["X-Total-Count"] = str(page.total)
    return response


@bp.post("/sync-now")
def sync_now() -> tuple[Response, int]:
    """Poll the books for changes now and send anything waiting, instead of at the next tick."""
    user = require_user()
    state = get_state()
    conn = get_connection(state, user.tenant)
    if conn is None or conn.status != ConnectionStatus.CONNECTED.value:
        return _problem(409, f"connect {wording.books_of(conn.provider if conn else None).name} first")
    request_sync(state, conn)
    resent = resend_waiting(state, user.tenant)
    return jsonify({"poll_queued": True, "outbox_requeued": resent}), 202


@bp.post("/records/<kind>/<crm_id>/retry")
def retry(kind: str, crm_id: str) -> Response | tuple[Response, int]:
    user = require_user()
    try:
        retry_record(get_state(), user.tenant, kind, crm_id)
    except (RecordNotFound, ValueError):
        return _problem(404, "no such record")
    return jsonify(s.RecordSchema().dump(_readable(_found(user.tenant, kind, crm_id), user.tenant)[0])), 202


@bp.post("/records/<kind>/<crm_id>/ignore")
def ignore(kind: str, crm_id: str) -> Response | tuple[Response, int]:
    user = require_user()
    try:
        ignore_record(get_state(), user.tenant, kind, crm_id)
    except (RecordNotFound, ValueError):
        return _problem(404, "no such record")
    return jsonify(s.RecordSchema().dump(_readable(_found(user.tenant, kind, crm_id), user.tenant)[0]))


@bp.get("/records/<kind>/<crm_id>")
def record(kind: str, crm_id: str) -> Response | tuple[Response, int]:
    user = require_user()
    row = get_link(get_state(), user.tenant, kind, crm_id)
    if row is None:
        return _problem(404, "no such record")
    return jsonify(s.RecordSchema().dump(_readable([row], user.tenant)[0]))


def _found(tenant: str, kind: str, crm_id: str) -> list[Link]:
    row = get_link(get_state(), tenant, kind, crm_id)
    if row is None:
        raise RecordNotFound(kind, crm_id)
    return [row]
