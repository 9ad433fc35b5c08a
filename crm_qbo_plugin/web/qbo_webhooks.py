"""POST /integrations/quickbooks/webhooks — Intuit's change notices (legacy and CloudEvents).

Order of work, so a forged or oversized body costs nothing and an authentic one is never lost:
1. size cap (413) from Content-Length, then while reading — before the whole body is read;
2. ``intuit-signature`` = base64 HMAC-SHA256 of the raw bytes with the verifier token, compared in
   constant time (401) — before parsing;
3. record every notice in the inbox (one small transaction; on SQLite it waits for the write lock
   in 1 ms steps) and make sure a drain job is queued per realm (one Redis round trip when one
   already is): nothing else happens in the request, so it answers well inside Intuit's 3 seconds;
4. 200 for anything authentic (unknown realms and entities are kept as dead letters: a non-200
   would hold back Intuit's later deliveries), 503 if the database cannot take the notices, so
   Intuit retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from crm_qbo_plugin import metrics
from crm_qbo_plugin.inbound.enqueue import request_drain
from crm_qbo_plugin.qbo.notices import Notice, parse_webhook, unparseable
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store import inbox
from crm_qbo_plugin.store.types import utcnow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024  # Intuit sets no limit; 2 MB holds thousands of notices
SIGNATURE_HEADER = "intuit-signature"

bp = Blueprint("crm_qbo_webhooks", __name__)


def signature_valid(raw: bytes, signature: str, verifier_token: str) -> bool:
    """Constant-time check of the header against our HMAC of the raw body."""
    expected = base64.b64encode(hmac.new(verifier_token.encode("utf-8"), raw, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("ascii", "replace"))


def _answer(status: int, **body: object) -> tuple[Response, int]:
    return jsonify(body), status


@bp.post("/webhooks")
def receive_webhook() -> tuple[Response, int]:
    state = get_state()
    # This endpoint's own limit, whatever the host's MAX_CONTENT_LENGTH: a smaller host limit would
    # refuse authentic deliveries, and Intuit would redeliver them forever.
    request.max_content_length = MAX_BODY_BYTES + 1
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return _answer(413, error=f"webhook bodies are limited to {MAX_BODY_BYTES} bytes")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return _answer(413, error=f"webhook bodies are limited to {MAX_BODY_BYTES} bytes")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature or not signature_valid(raw, signature, state.settings.webhook_verifier_token):
        return _answer(401, error=f"missing or invalid {SIGNATURE_HEADER}")
    try:
        notices: list[Notice] = parse_webhook(json.loads(raw))
    except (ValueError, RecursionError):  # also UnicodeDecodeError; RecursionError: absurdly deep nesting
        notices = [unparseable(raw)]
    try:
        result = inbox.store_webhook(state.engine, notices, utcnow())
    except SQLAlchemyError as exc:
        log.error("web.webhook_not_recorded error=%s next=intuit_retries", type(exc).__name__)
        return _answer(503, error="the notices could not be stored; retry later")
    metrics.count(state.redis, "failures", result.dead, kind="dead_letter")  # unusable on arrival
    for realm_id in sorted(result.pending_realms):
        request_drain(state, realm_id)
    return _answer(200, recorded=result.recorded, duplicates=result.duplicates, dead=result.dead)
