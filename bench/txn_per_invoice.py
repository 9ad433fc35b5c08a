"""DB transactions and QBO API calls for a tenant's first invoice: one connected tenant, one new
contact (contact.created) and one sent invoice (invoice.sent), pushed by an in-process rq worker.

Counts SQLAlchemy transactions on the plugin's engine (``begin``/``commit`` events) from the
first publish until the worker is idle, and every request the plugin made to the sandbox (through
a recording proxy). Run from a checkout: ``.venv/bin/python -m bench.txn_per_invoice``.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.store.migrate import upgrade
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    proxied,
    publish,
    run_worker,
)
from tests.support.fake_host import FakeHost
from tests.support.plugin_app import plugin_settings
from tests.support.redis_server import redis_server


def measure() -> dict[str, int]:
    from qbo_sandbox import create_app as sandbox_app
    from qbo_sandbox.server import serve_in_thread

    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url, \
            serve_in_thread(sandbox_app()) as sandbox_url, proxied(sandbox_url) as proxy:
        database_url = f"sqlite:///{Path(tmp) / 'plugin.db'}"
        upgrade(database_url)
        host = FakeHost()
        app, realm = make_app(plugin_settings(database_url, redis_url), host, sandbox_url, api_url=proxy.url)
        connect(app, sandbox_url, realm)
        engine = app.extensions["crm_qbo"].engine
        events: Counter[str] = Counter()
        for name in ("begin", "commit", "rollback"):
            sa.event.listen(engine, name, lambda *_a, _n=name: events.update([_n]))
        proxy.requests.clear()
        host.contacts[(TENANT, "c1")] = contact()
        publish(app, EventType.CONTACT_CREATED, "c1")
        host.invoices[(TENANT, "inv1")] = invoice()
        publish(app, EventType.INVOICE_SENT, "inv1")
        run_worker(app)
        calls = Counter(f"{r['method']} {r['path'].rsplit('/', 1)[-1] if '/' in r['path'] else r['path']}"
                        for r in proxy.requests)
        return {"transactions": events["begin"], "commits": events["commit"], "rollbacks": events["rollback"],
                "qbo_calls": len(proxy.requests), **{f"call {k}": v for k, v in sorted(calls.items())}}


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    for key, value in measure().items():
        print(f"{key}: {value}")
