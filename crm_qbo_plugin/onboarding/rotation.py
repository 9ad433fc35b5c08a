"""Re-encrypt every stored token under the newest CRM_QBO_SECRET_KEYS key, so the old key can go."""

from __future__ import annotations

from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.store.token_store import rotate_all


def rotate_token_keys(state: Services) -> int:
    """Returns how many connections were re-encrypted; all or nothing (one transaction)."""
    return rotate_all(state.engine, state.cipher)
