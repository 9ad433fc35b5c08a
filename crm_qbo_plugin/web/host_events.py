"""POST /integrations/quickbooks/events — host events from a CRM running in another process.

The signature (HMAC-SHA256 of the raw body with the host's secret, hex, in ``X-CRM-Signature:
sha256=…``, the host named in ``X-CRM-Host``) is checked in constant time before the body is parsed;
anything unsigned, badly signed, oversized or malformed is refused with nothing written, and so is an
event for a tenant the host may not speak for (see `may_post_for`).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from crm_qbo_plugin.events import (
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    EventError,
    EventType,
    HostEvent,
    check_id,
)
from crm_qbo_plugin.host import Origin, PaymentSource
from crm_qbo_plugin.outbound.intake import publish
from crm_qbo_plugin.signing import verify_host_event
from crm_qbo_plugin.state import PluginState, get_state

MAX_BODY_BYTES = 64 * 1024
SIGNATURE_HEADER = "X-CRM-Signature"
HOST_HEADER = "X-CRM-Host"

bp = Blueprint("crm_qbo_host_events", __name__)


class HostEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    tenant = fields.String(required=True, validate=validate.Length(min=1, max=MAX_ID_LENGTH))
    type = fields.Enum(EventType, by_value=True, required=True)
    subject_id = fields.String(required=True, validate=validate.Length(min=1, max=MAX_ID_LENGTH))
    key = fields.String(required=True, validate=validate.Length(min=1, max=MAX_KEY_LENGTH))
    origin = fields.Enum(Origin, by_value=True, load_default=Origin.CRM)
    source = fields.Enum(PaymentSource, by_value=True, load_default=None, allow_none=True)
    occurred_at = fields.AwareDateTime(required=True)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> tuple[str, HostEvent]:
        tenant = data.pop("tenant")
        try:
            return check_id("tenant", tenant), HostEvent(**data)
        except EventError as exc:
            field, _sep, message = str(exc).partition(": ")
            raise ValidationError({field: [message]}) from None


def _problem(status: int, message: str, errors: dict[str, Any] | None = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message}
    if errors:
        body["fields"] = errors
    return jsonify(body), status


def may_post_for(state: PluginState, host_id: str, tenant: str) -> bool:
    """A host secret speaks only for the tenants it is bound to (``host_id:t1|t2=secret``), and never
    for a tenant the CRM does not know: a leaked secret cannot fill the outbox with invented tenants.
    Unknown and forbidden tenants get the same answer, so a host cannot probe for other tenants."""
    bound = state.settings.host_tenants.get(host_id)
    if bound is not None and tenant not in bound:
        return False
    return state.host.location_profile(tenant) is not None


@bp.post("/events")
def receive_event() -> tuple[Response, int]:
    state = get_state()
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return _problem(413, f"event bodies are limited to {MAX_BODY_BYTES} bytes")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return _problem(413, f"event bodies are limited to {MAX_BODY_BYTES} bytes")
    host_id = request.headers.get(HOST_HEADER, "")
    secret = state.settings.host_secrets.get(host_id)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if secret is None or not verify_host_event(raw, secret, signature):
        return _problem(401, f"missing or invalid {SIGNATURE_HEADER} for the host named in {HOST_HEADER}")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; RecursionError: absurd nesting
        payload = None
    if not isinstance(payload, dict):
        return _problem(400, "the body must be a JSON object")
    try:
        tenant, event = HostEventSchema().load(payload)
    except ValidationError as exc:
        return _problem(400, "invalid host event", exc.normalized_messages())
    if not may_post_for(state, host_id, tenant):
        return _problem(403, f"the host named in {HOST_HEADER} may not post events for this tenant")
    result = publish(state, tenant, event)
    return jsonify({"outbox_id": result.outbox_id, "created": result.created}), 202
