"""The reference CRM on a migrated test database and a real Redis, plus API helpers."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import OutboxEvent

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SECRET_KEY = "reference-crm-test-secret-key-0123456789"


def crm_config(plugin_config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {**plugin_config, "REFERENCE_CRM_SECRET_KEY": SECRET_KEY, "REFERENCE_CRM_ADMIN_TOKEN": ADMIN_TOKEN,
            **overrides}


def close(app: Flask) -> None:
    from reference_crm.state import crm_state

    crm_state(app).engine.dispose()
    state = get_state(app)
    state.engine.dispose()
    state.redis.close()


def new_location(client: FlaskClient, name: str = "Downtown", **extra: Any) -> dict[str, Any]:
    """POST /api/locations; returns its answer plus "auth" headers for the new key."""
    body = {"name": name, "user": {"email": f"owner@{name.lower()}.example.com", "password": "correct horse battery"},
            **extra}
    answer = client.post("/api/locations", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 201, answer.json
    data: dict[str, Any] = answer.json
    data["auth"] = {"Authorization": f"Bearer {data['api_key']}"}
    return data


def outbox(app: Flask) -> list[tuple[str, str, str, str, str | None]]:
    """(tenant, type, key, origin, source) of every outbox row, in order."""
    with Session(get_state(app).engine) as db:
        rows = db.exec(select(OutboxEvent).order_by(OutboxEvent.id))  # type: ignore[arg-type]
        return [(r.tenant_id, r.event_type, r.event_key, r.origin, r.source) for r in rows]
