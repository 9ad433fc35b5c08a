"""QuickBooksPlugin, a Flask extension in the pattern of Flask's own guide.

``init_app`` keeps no app on the extension object: everything per app lives in
``app.extensions["crm_qbo"]``, so one plugin object can serve several apps (and tests).
Settings and the manifest are validated here, so a bad deployment fails at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from flask import Flask, current_app

from crm_qbo_plugin import logs
from crm_qbo_plugin.crypto import TokenCipher
from crm_qbo_plugin.events import HostEvent
from crm_qbo_plugin.host import CrmHost
from crm_qbo_plugin.manifest import load_manifest
from crm_qbo_plugin.outbound.badge import RecordSync, badge_of
from crm_qbo_plugin.outbound.handlers import fresh_handlers
from crm_qbo_plugin.outbound.intake import PublishResult, publish, publish_many
from crm_qbo_plugin.qbo import IntuitTokenEndpoint, RedisLimiter
from crm_qbo_plugin.runtime import services as _services
from crm_qbo_plugin.runtime.clients import xero_identity
from crm_qbo_plugin.runtime.queue import make_queue
from crm_qbo_plugin.runtime.services import Services
from crm_qbo_plugin.settings import load_settings
from crm_qbo_plugin.store.db import make_engine
from crm_qbo_plugin.xero import RedisLimiter as XeroLimiter

EXTENSION_KEY = "crm_qbo"


def get_services(app: Flask | None = None) -> Services:
    """The plugin services of `app`, or of the current app; a clear error if the plugin is not mounted."""
    target = app or current_app
    try:
        services: Services = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("QuickBooksPlugin is not initialised on this app: call plugin.init_app(app, host)") from None
    return services


get_state = get_services  # the old name, kept for one release


class QuickBooksPlugin:
    def __init__(self, app: Flask | None = None, host: CrmHost | None = None) -> None:
        self._default_host = host
        if app is not None:
            self.init_app(app, host)

    def init_app(self, app: Flask, host: CrmHost | None = None) -> None:
        import redis

        from crm_qbo_plugin.cli import plugin_cli
        from crm_qbo_plugin.web import make_blueprint

        host = host or self._default_host
        if host is None or not isinstance(host, CrmHost):
            raise TypeError("QuickBooksPlugin.init_app needs a host implementing crm_qbo_plugin.CrmHost")
        logs.install()  # every log record carries tenant= and realm= (see crm_qbo_plugin.logs)
        settings = load_settings(app.config)
        manifest = load_manifest()
        connection = redis.Redis.from_url(settings.redis_url)
        app.extensions[EXTENSION_KEY] = Services(
            settings=settings,
            manifest=manifest,
            engine=make_engine(settings.database_url),
            redis=connection,
            queue=make_queue(connection),
            host=host,
            cipher=TokenCipher(settings.secret_keys),
            token_endpoint=IntuitTokenEndpoint(settings.client_id, settings.client_secret, settings.environment),
            limiter=RedisLimiter(connection),
            xero_identity=xero_identity(settings),
            xero_limiter=XeroLimiter(connection),
            handlers=fresh_handlers(),
        )
        _services.provide(get_services)
        app.register_blueprint(make_blueprint(), url_prefix=manifest.mount_path)
        app.cli.add_command(plugin_cli, "crm-qbo")

    def publish(self, tenant: str, event: HostEvent) -> PublishResult:
        """Record a host event for `tenant` (once per event key) and queue it; needs an app context."""
        return publish(get_state(), tenant, event)

    def publish_many(self, tenant: str, events: Sequence[HostEvent]) -> list[PublishResult]:
        """`publish` for many events in one transaction (a bulk write's events); results in order."""
        return publish_many(get_state(), tenant, events)

    def record_sync(self, tenant: str, kind: str, crm_id: str) -> RecordSync | None:
        """What a badge on the host's page of one record needs (kind: contact, invoice, payment,
        sales_receipt): status in words, the reason and what to do (in the words of the location's
        books), the record's web address in QuickBooks or Xero, whether Retry (or, for an invoice not
        exported, Send to QuickBooks/Xero) applies.
        None if the plugin has never handled it; needs an app context."""
        from crm_qbo_plugin.store.connections import connection_for
        from crm_qbo_plugin.store.links import get_link
        from crm_qbo_plugin.web import wording

        state = get_state()
        link = get_link(state, tenant, kind, crm_id)
        if link is None:
            return None
        conn = connection_for(state.engine, tenant)
        sandbox = state.settings.environment.lower() != "production"
        badge = badge_of(link, conn.realm_id if conn else None, sandbox, conn.provider if conn else "quickbooks")
        books = wording.books_of(conn.provider if conn else None)
        def say(text: str | None) -> str | None:
            return wording.speak(text, books) if text else text

        return replace(badge, books=books.name, message=say(badge.message), reason=say(badge.reason),
                       action=say(badge.action))

    def books_name(self, tenant: str) -> str | None:
        """The accounting system the location is connected to, by name ("QuickBooks", "Xero"), for
        the host's own labels; None when it has no connection. Needs an app context."""
        from crm_qbo_plugin.store.connections import connection_for
        from crm_qbo_plugin.web import wording

        conn = connection_for(get_state().engine, tenant)
        return wording.books_of(conn.provider).name if conn else None

    def retry_record(self, tenant: str, kind: str, crm_id: str) -> RecordSync | None:
        """Retry from the host's page: the record is sent to QuickBooks again (its badge turns to
        sending); LookupError if the plugin has nothing to retry for it; needs an app context."""
        from crm_qbo_plugin.outbound.records import retry_record

        retry_record(get_state(), tenant, kind, crm_id)
        return self.record_sync(tenant, kind, crm_id)

    def export_invoice(self, tenant: str, invoice_id: str) -> RecordSync | None:
        """"Send to QuickBooks" on one invoice (for when automatic export is off); LookupError when
        the CRM has no such invoice; needs an app context."""
        from crm_qbo_plugin.outbound.records import export_invoice

        export_invoice(get_state(), tenant, invoice_id)
        return self.record_sync(tenant, "invoice", invoice_id)

    def state(self, app: Flask | None = None) -> Services:
        return get_services(app)

    def services(self, app: Flask | None = None) -> Services:
        return get_services(app)

