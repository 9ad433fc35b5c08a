"""Signed webhook posts to the plugin, as Intuit sends them (for bodies the sandbox cannot make)."""

from __future__ import annotations

import json
from typing import Any

import requests

from qbo_sandbox.webhooks import sign
from tests.support.sandbox_qbo import VERIFIER

WEBHOOK_PATH = "/integrations/quickbooks/webhooks"


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()


def post_signed(env: Any, body: Any, token: str = VERIFIER, signature: str | None = None,
                headers: dict[str, str] | None = None) -> requests.Response:
    raw = encode(body)
    sent = {"Content-Type": "application/json", "intuit-signature": signature if signature is not None else sign(raw, token)}
    return requests.post(env.plugin_url + WEBHOOK_PATH, data=raw, headers={**sent, **(headers or {})}, timeout=10)


def legacy_body(realm: str, entities: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """{"eventNotifications": [...]} for (name, id, operation, lastUpdated) entries."""
    return {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [
        {"name": name, "id": entity_id, "operation": operation, "lastUpdated": when}
        for name, entity_id, operation, when in entities]}}]}


def cloud_event(realm: str, entity: str, entity_id: str, verb: str, event_id: str,
                time: str = "2026-01-01T00:00:00Z", **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "intuit.test", "type": f"qbo.{entity}.{verb}.v1",
            "datacontenttype": "application/json", "time": time, "intuitentityid": entity_id,
            "intuitaccountid": realm, "data": data}
