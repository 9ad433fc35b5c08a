"""Fire a trigger once per (tenant, trigger, subject), ever.

The claim is a row with a unique constraint, committed BEFORE the host is called, and the host call
carries an idempotency key derived from the claim. So: a replayed webhook or a CDC re-read finds the
claim and stops; a crash after the host call but before the row says "fired" re-calls the host with
the same key, which the host ignores; a crash before the host call is completed on the next pass.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from crm_qbo_plugin.host import TriggerCall
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store import claims
from crm_qbo_plugin.store.claims import CLAIMED, FIRED
from crm_qbo_plugin.store.tables import AutomationRun

log = logging.getLogger(__name__)

__all__ = ["CLAIMED", "FIRED", "complete_unfinished", "fire_once", "idempotency_key", "unfinished_claims"]


def idempotency_key(tenant: str, trigger: str, subject_id: str) -> str:
    digest = hashlib.sha256(f"{tenant}\x00{trigger}\x00{subject_id}".encode()).hexdigest()[:40]
    return f"crm-qbo:{trigger}:{digest}"[:100]


def fire_once(state: Services, tenant: str, trigger: str, subject_id: str, contact_id: str,
              payload: Mapping[str, Any]) -> bool:
    """Claim and fire; True if this call delivered the trigger (or completed an unfinished claim)."""
    if trigger not in state.manifest.trigger_ids():
        raise ValueError(f"{trigger!r} is not a trigger declared in plugin.yaml")
    key = idempotency_key(tenant, trigger, subject_id)
    payload = {**payload, "contact_id": contact_id}
    existing = claims.claim(state.engine, tenant, trigger, subject_id, key, payload)
    if existing is not None:
        if existing.status == FIRED:
            return False
        payload = existing.payload  # finish the earlier claim exactly as it was made
    state.host.fire_trigger(TriggerCall(tenant=tenant, trigger=trigger, contact_id=contact_id,
                                        payload=dict(payload), idempotency_key=key))
    claims.mark_fired(state.engine, key)
    log.info("automations.fired trigger=%s", trigger)
    return True


def unfinished_claims(state: Services) -> list[AutomationRun]:
    """Claims whose host call may not have happened (a crash in between): re-fired by the sweeper."""
    return claims.unfinished(state.engine)


def complete_unfinished(state: Services) -> int:
    done = 0
    for run in unfinished_claims(state):
        contact = str(run.payload.get("contact_id", ""))
        if contact and fire_once(state, run.tenant_id, run.trigger, run.subject_id, contact, run.payload):
            done += 1
    return done
