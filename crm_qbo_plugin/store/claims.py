"""Automation claims: one row per (tenant, trigger, subject), ever (a unique constraint), claimed
before the host is called and marked fired after (see automations/claims.py for why)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import AutomationRun
from crm_qbo_plugin.store.types import utcnow

CLAIMED, FIRED = "claimed", "fired"


def claim(engine: Engine, tenant: str, trigger: str, subject_id: str, key: str,
          payload: Mapping[str, Any]) -> AutomationRun | None:
    """Commit a new claim and return None; if one exists already, return it instead (unchanged)."""
    with session(engine) as db:
        db.add(AutomationRun(tenant_id=tenant, trigger=trigger, subject_id=subject_id, idempotency_key=key,
                             status=CLAIMED, payload=dict(payload)))
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            return db.exec(select(AutomationRun).where(
                AutomationRun.tenant_id == tenant, AutomationRun.trigger == trigger,
                AutomationRun.subject_id == subject_id)).one()
    return None


def mark_fired(engine: Engine, key: str) -> None:
    with session(engine) as db:
        run = db.exec(select(AutomationRun).where(AutomationRun.idempotency_key == key)).one()
        run.status, run.fired_at = FIRED, utcnow()
        db.add(run)
        db.commit()


def fired(engine: Engine, tenant: str, trigger: str, subject_id: str) -> bool:
    """Whether the trigger was delivered for the subject already."""
    with session(engine) as db:
        return db.exec(select(AutomationRun.id).where(
            AutomationRun.tenant_id == tenant, AutomationRun.trigger == trigger,
            AutomationRun.subject_id == subject_id, AutomationRun.status == FIRED)).first() is not None


def unfinished(engine: Engine) -> list[AutomationRun]:
    """Claims whose host call may not have happened (a crash in between)."""
    with session(engine) as db:
        return list(db.exec(select(AutomationRun).where(AutomationRun.status == CLAIMED)))
