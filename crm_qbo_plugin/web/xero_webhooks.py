"""POST /integrations/quickbooks/xero/webhooks — Xero's change notices, into the same inbox.

Order of work, as for QuickBooks' webhooks: a size cap (413), then ``x-xero-signature`` checked
in constant time on the raw bytes (401: Xero's intent-to-receive check expects exactly that for a
wrong signature, and 200 with an empty body for a right one), then every INVOICE and CONTACT event
recorded in the inbox (a redelivery is recorded once) and a poll of its organisation queued, which
re-reads each record and applies it. 503 if the database cannot take them, so Xero retries.
Unset ``CRM_QBO_XERO_WEBHOOK_KEY``: 404 (this deployment takes no Xero webhooks).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError

from crm_qbo_plugin.inbound.enqueue import request_xero_poll
from crm_qbo_plugin.qbo.notices import Notice
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store import inbox
from crm_qbo_plugin.store.connections import connection_of_realm
from crm_qbo_plugin.store.types import utcnow
from crm_qbo_plugin.xero import NoticeError, parse_delivery, signature_ok

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
SIGNATURE_HEADER = "x-xero-signature"
ENTITIES = {"INVOICE": "XeroInvoice", "CONTACT": "XeroContact"}

bp = Blueprint("crm_qbo_xero_webhooks", __name__)


def _empty(status: int) -> Response:
    return Response(b"", status=status)


@bp.post("/xero/webhooks")
def receive_xero_webhook() -> Response:
    state = get_state()
    key = state.settings.xero_webhook_key
    if not key:
        return _empty(404)
    request.max_content_length = MAX_BODY_BYTES + 1
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _empty(413)
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return _empty(413)
    if not signature_ok(raw, request.headers.get(SIGNATURE_HEADER), key):
        return _empty(401)
    try:
        delivery = parse_delivery(raw)
    except NoticeError as exc:  # authentic but not Xero's shape: nothing to apply, never redelivered
        log.warning("web.xero_webhook_unusable problem=%s", exc)
        return _empty(200)
    notices = [Notice(realm_id=e.tenant_id, entity=ENTITIES[e.category], entity_id=e.resource_id,
                      operation=e.event_type, change_stamp=e.event_date.isoformat()) for e in delivery.events]
    if not notices:  # intent to receive, or only categories the sync does not apply
        return _empty(200)
    try:
        recorded = inbox.store_webhook(state.engine, notices, utcnow())
    except SQLAlchemyError as exc:
        log.error("web.xero_webhook_not_recorded error=%s next=xero_retries", type(exc).__name__)
        return _empty(503)
    for org in sorted(recorded.pending_realms):
        conn = connection_of_realm(state.engine, org)
        if conn is not None and conn.id is not None:
            request_xero_poll(state, conn.id)
    return _empty(200)
