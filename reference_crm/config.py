"""The CRM's own settings (REFERENCE_CRM_*), read from the Flask config first, then the environment.

The plugin reads its CRM_QBO_* settings itself. Development defaults exist only in demo mode
(REFERENCE_CRM_DEMO=1): outside it, a missing secret key stops start-up with a message.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "REFERENCE_CRM_"


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class CrmConfig:
    database_url: str
    secret_key: str
    admin_token: str | None
    demo: bool

    def __repr__(self) -> str:
        return f"CrmConfig(database_url={self.database_url.split('@')[-1]!r}, demo={self.demo}, secrets=<hidden>)"


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def load_config(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> CrmConfig:
    environ = os.environ if environ is None else environ
    config = config or {}

    def get(name: str) -> str | None:
        value = config.get(name, environ.get(name))
        return None if value is None or str(value).strip() == "" else str(value).strip()

    demo = _truthy(get(PREFIX + "DEMO") or "0")
    database_url = get(PREFIX + "DATABASE_URL") or get("CRM_QBO_DATABASE_URL")
    if database_url is None:
        raise ConfigError(
            "REFERENCE_CRM_DATABASE_URL (or CRM_QBO_DATABASE_URL) is missing: set it to a SQLAlchemy URL, "
            "e.g. sqlite:///crm.db"
        )
    secret_key = get(PREFIX + "SECRET_KEY")
    if secret_key is None and demo:
        secret_key = secrets.token_hex(32)  # demo only: sessions last as long as the process
    if secret_key is None or len(secret_key) < 16:
        raise ConfigError(
            "REFERENCE_CRM_SECRET_KEY is missing or shorter than 16 characters: set it to a long random "
            "string (python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    admin_token = get(PREFIX + "ADMIN_TOKEN")
    if admin_token is not None and len(admin_token) < 16:
        raise ConfigError("REFERENCE_CRM_ADMIN_TOKEN must be at least 16 characters (or unset to refuse POST /api/locations)")
    return CrmConfig(database_url=database_url, secret_key=secret_key, admin_token=admin_token, demo=demo)
