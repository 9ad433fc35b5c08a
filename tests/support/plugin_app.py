"""A minimal host Flask app with the plugin mounted, configured for tests.

``create_app()`` reads CRM_QBO_* from the environment, so subprocesses (`crm-qbo --app
tests.support.plugin_app:create_app worker`) build the same app as in-process tests.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from flask import Flask

from crm_qbo_plugin import QuickBooksPlugin
from tests.support.fake_host import FakeHost

HOST_ID = "test-host"
HOST_SECRET = "s3cret-for-tests-0123456789"


def plugin_settings(database_url: str, redis_url: str, **overrides: Any) -> dict[str, Any]:
    config = {
        "CRM_QBO_DATABASE_URL": database_url,
        "CRM_QBO_REDIS_URL": redis_url,
        "CRM_QBO_CLIENT_ID": "test-client",
        "CRM_QBO_CLIENT_SECRET": "test-client-secret",
        "CRM_QBO_REDIRECT_URI": "http://127.0.0.1:5000/integrations/quickbooks/callback",
        "CRM_QBO_ENVIRONMENT": "sandbox",
        "CRM_QBO_WEBHOOK_VERIFIER_TOKEN": "test-verifier",
        "CRM_QBO_SECRET_KEYS": Fernet.generate_key().decode(),
        "CRM_QBO_HOST_SECRETS": f"{HOST_ID}={HOST_SECRET}",
    }
    config.update(overrides)
    return config


def create_app(config: dict[str, Any] | None = None, host: FakeHost | None = None) -> Flask:
    app = Flask("plugin_test_host")
    app.config.update(config or {})
    QuickBooksPlugin(app, host or FakeHost())
    return app
