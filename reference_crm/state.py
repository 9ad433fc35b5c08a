"""What the CRM keeps per Flask app (``app.extensions["reference_crm"]``), and how it publishes.

Every change goes the same way: the operation writes rows and returns the host events that describe
it; ``commit`` commits the CRM's transaction and only then hands the events to the plugin, so the
plugin never hears about a change that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy.engine import Engine
from sqlmodel import Session

from crm_qbo_plugin import HostEvent, QuickBooksPlugin
from reference_crm.config import CrmConfig

log = logging.getLogger(__name__)

EXTENSION_KEY = "reference_crm"


@dataclass
class CrmState:
    config: CrmConfig
    engine: Engine
    plugin: QuickBooksPlugin

    def commit(self, db: Session, tenant: str, events: Iterable[HostEvent | None]) -> None:
        """Commit `db`, then publish `events` (None entries, for "nothing changed", are dropped)."""
        pending = [event for event in events if event is not None]
        db.commit()
        if len(pending) > 1:  # many changes (a bulk write): one transaction in the plugin too
            try:
                self.plugin.publish_many(tenant, pending)
            except Exception:
                log.exception("crm.publish_failed", extra={"event_key": pending[0].key, "events": len(pending),
                                                           "tenant": tenant})
            return
        for event in pending:
            try:
                self.plugin.publish(tenant, event)
            except Exception:
                # The CRM's change stands; the plugin reports its own failures. Ids only in the log.
                log.exception("crm.publish_failed", extra={"event_key": event.key, "tenant": tenant})


def crm_state(app: Flask | None = None) -> CrmState:
    state: CrmState = (app or current_app).extensions[EXTENSION_KEY]
    return state
