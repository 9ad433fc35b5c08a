"""The app factory: ``reference_crm.app:create_app`` (also what ``crm-qbo --app`` names).

The CRM's settings come from REFERENCE_CRM_* and the plugin's from CRM_QBO_* (Flask config first,
then the environment). Start-up creates the CRM's own crm_ tables only; the plugin's qbo_ tables
come from ``crm-qbo db upgrade``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response
from flask import request as http_request
from flask.sessions import SecureCookieSessionInterface

from crm_qbo_plugin import QuickBooksPlugin
from reference_crm.api.routes import register_api
from reference_crm.config import load_config
from reference_crm.db import make_engine
from reference_crm.host import ReferenceHost
from reference_crm.models import metadata
from reference_crm.state import EXTENSION_KEY, CrmState
from reference_crm.web import pages, request

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent

# The CRM's pages load only its own files; nothing may frame them (click-jacking). Form posts and
# redirects are not restricted (default-src does not cover them), so Connect still leads to Intuit.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
                           "frame-ancestors 'none'")


class SessionCookies(SecureCookieSessionInterface):
    """The session cookie is marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or http_request.is_secure


def _security_headers(response: Response) -> Response:
    """Headers on every answer. The CSP is added beside any the plugin sent (browsers enforce both);
    the others are left as the plugin set them."""
    response.headers.add("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if http_request.endpoint != "static":  # pages and API answers are per user: never stored by caches
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    # Explicit paths: they do not depend on how the package was installed.
    app = Flask("reference_crm", root_path=str(PACKAGE_DIR), instance_path=str(PACKAGE_DIR / "instance"))
    app.config.update(config or {})
    crm_config = load_config(app.config)
    app.config.update(
        SECRET_KEY=crm_config.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.session_interface = SessionCookies()
    app.after_request(_security_headers)
    engine = make_engine(crm_config.database_url)
    create_tables(engine)
    plugin = QuickBooksPlugin()
    state = CrmState(config=crm_config, engine=engine, plugin=plugin)
    app.extensions[EXTENSION_KEY] = state
    plugin.init_app(app, ReferenceHost(state))
    request.install(app)
    register_api(app)
    app.register_blueprint(pages.bp)
    return app


def create_tables(engine: sa.engine.Engine) -> None:
    """Create the crm_ tables that are missing, and add the columns a table made by an older version
    lacks. Several processes (web, worker, scheduler) start at once on the same database; one of
    them losing the race to create a table or add a column is not an error."""
    try:
        metadata.create_all(engine)
        add_missing_columns(engine)
    except sa.exc.DBAPIError:
        log.info("crm.create_tables_race; checking again")
        metadata.create_all(engine)
        add_missing_columns(engine)


def add_missing_columns(engine: sa.engine.Engine) -> None:
    """ALTER TABLE … ADD COLUMN for each model column the database's table lacks (each such column
    has a server default, so existing rows get a value)."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                ddl = sa.schema.CreateColumn(column).compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
                log.info("crm.column_added %s.%s", table.name, column.name)
