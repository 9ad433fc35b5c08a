"""Re-encrypt every stored token under the newest CRM_QBO_SECRET_KEYS key, so the old key can go."""

from __future__ import annotations

from sqlmodel import select

from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection


def rotate_token_keys(state: Services) -> int:
    """Returns how many connections were re-encrypted; all or nothing (one transaction)."""
    rotated = 0
    with session(state.engine) as db:
        for row in db.exec(select(Connection)):
            if row.access_token_enc is None and row.refresh_token_enc is None:
                continue
            if row.access_token_enc:
                row.access_token_enc = state.cipher.rotate(row.access_token_enc)
            if row.refresh_token_enc:
                row.refresh_token_enc = state.cipher.rotate(row.refresh_token_enc)
            db.add(row)
            rotated += 1
        db.commit()
    return rotated
