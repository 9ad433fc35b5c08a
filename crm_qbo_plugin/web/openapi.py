"""The OpenAPI document of the plugin's JSON API, built with apispec from the same marshmallow
schemas that validate requests (so the document cannot drift from what the API accepts)."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify

from crm_qbo_plugin.web import api_schemas as s

bp = Blueprint("crm_qbo_openapi", __name__)

ERRORS = {
    "400": {"description": "Invalid input; `fields` names each bad field", "content": {"application/json": {"schema": "Problem"}}},
    "401": {"description": "Nobody is signed in to the CRM", "content": {"application/json": {"schema": "Problem"}}},
}
WRITE_ERRORS = {
    "403": {"description": "Missing or stale X-CSRF-Token header (read it from any API response)",
            "content": {"application/json": {"schema": "Problem"}}},
}


def _op(summary: str, schema: str | None = None, *, many: bool = False, body: str | None = None,
        params: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = dict(ERRORS)
    if schema:
        content: Any = {"type": "array", "items": schema} if many else schema
        responses["200"] = {"description": "OK", "content": {"application/json": {"schema": content}}}
    responses.update(extra or {})
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        operation["parameters"] = params
    return operation


def build_spec(prefix: str) -> dict[str, Any]:
    spec = APISpec(title="crm-qbo-plugin API", version="1", openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": "Status, settings, sync runs and record statuses of the accounting integration (QuickBooks Online or Xero) "
                                        "for the signed-in CRM user's location."})
    for name, schema in (("Problem", s.ProblemSchema), ("Status", s.StatusSchema), ("Settings", s.SettingsSchema),
                         ("Account", s.AccountSchema), ("TaxCode", s.TaxCodeSchema), ("SyncRun", s.SyncRunSchema),
                         ("Record", s.RecordSchema), ("History", s.HistorySchema)):
        spec.components.schema(name, schema=schema)
    conflict = {"409": {"description": "Not possible in the connection's current state", "content": {"application/json": {"schema": "Problem"}}}}
    upstream = {"502": {"description": "the books (QuickBooks or Xero) did not answer", "content": {"application/json": {"schema": "Problem"}}}}
    api = f"{prefix}/api"
    spec.path(path=f"{api}/status", operations={"get": _op("Connection status, setup and record counts", "Status")})
    spec.path(path=f"{api}/settings", operations={
        "get": _op("Per-location settings", "Settings"),
        "patch": _op("Change settings (validated against the books)", "Settings", body="Settings",
                     extra={**conflict, **upstream, **WRITE_ERRORS}),
    })
    spec.path(path=f"{api}/accounts", operations={"get": _op("Income accounts to pick the revenue account from", "Account", many=True, extra={**conflict, **upstream})})
    spec.path(path=f"{api}/tax-codes", operations={"get": _op("The books' tax codes (QuickBooks) or tax rates (Xero) for the tax mapping", "TaxCode", many=True, extra={**conflict, **upstream})})
    spec.path(path=f"{api}/sync-now", operations={"post": _op(
        "Poll the books for changes and send waiting records now", None,
        extra={**conflict, **WRITE_ERRORS, "202": {"description": "Queued", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"poll_queued": {"type": "boolean"}, "outbox_requeued": {"type": "integer"}}}}}}})})
    spec.path(path=f"{api}/sync-runs", operations={"get": _op("Recent sync runs with counts and errors", "SyncRun", many=True, params=[
        {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}])})
    spec.path(path=f"{api}/history", operations={"get": _op(
        "Sync work in plain language, both directions, newest first", "History", many=True, params=[
            {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}])})
    records = _op("One page of records by status, optionally searched, newest first", "Record", many=True, params=[
        {"in": "query", "name": "status", "schema": {"type": "string", "enum": list(s.RECORD_STATUSES)}},
        {"in": "query", "name": "kind", "schema": {"type": "string", "enum": list(s.KINDS)}},
        {"in": "query", "name": "q", "description": "search: a CRM number, name or e-mail, or a CRM, QuickBooks or Xero id",
         "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"}},
        {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"in": "query", "name": "offset", "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000}}])
    records["responses"]["200"]["headers"] = {"X-Total-Count": {
        "description": "how many records match in all (every page)", "schema": {"type": "integer", "minimum": 0}}}
    spec.path(path=f"{api}/records", operations={"get": records})
    record_params = [{"in": "path", "name": "kind", "required": True, "schema": {"type": "string", "enum": list(s.KINDS)}},
                     {"in": "path", "name": "crm_id", "required": True, "schema": {"type": "string"}}]
    missing = {"404": {"description": "No such record for this location", "content": {"application/json": {"schema": "Problem"}}}}
    spec.path(path=f"{api}/records/{{kind}}/{{crm_id}}", operations={"get": _op("One record's sync status", "Record", params=record_params,
                                                                                 extra=missing)})
    spec.path(path=f"{api}/records/{{kind}}/{{crm_id}}/retry", operations={"post": _op(
        "Push the record again (its latest change)", None, params=record_params,
        extra={**missing, **WRITE_ERRORS, "202": {"description": "Queued", "content": {"application/json": {"schema": "Record"}}}})})
    spec.path(path=f"{api}/records/{{kind}}/{{crm_id}}/ignore", operations={"post": _op(
        "Stop syncing the record until it is retried", "Record", params=record_params, extra={**missing, **WRITE_ERRORS})})
    return spec.to_dict()


@bp.get("/api/openapi.json")
def openapi() -> Response:
    from crm_qbo_plugin.state import get_state

    return jsonify(build_spec(get_state().manifest.mount_path))
