"""Helpers for inbound-sync tests: a plugin app served on a loopback port that the sandbox delivers
its webhooks to, "our write" recorded the way the outbound side records it (QBO write + link +
write-ledger row with the owned hash of QBO's answer), a host that counts its writes, and an
in-process rq worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
import sqlalchemy as sa
from flask import Flask
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from crm_qbo_plugin import Contact, Invoice, InvoiceStatus, Origin
from crm_qbo_plugin.mapping.owned import owned_hash
from crm_qbo_plugin.qbo import QboClient
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import InboxNotice, Link, WriteLedger
from crm_qbo_plugin.store.types import utcnow
from qbo_sandbox.server import serve_in_thread
from tests.support.connected import connect_directly
from tests.support.fake_host import FakeHost
from tests.support.plugin_app import create_app
from tests.support.sandbox_qbo import create_company, plugin_overrides, register_app

TENANT = "loc-1"
WEBHOOK_PATH = "/integrations/quickbooks/webhooks"


class CountingHost(FakeHost):
    """FakeHost that logs every write the plugin makes into the CRM."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, str, Origin]] = []

    def upsert_contact(self, tenant: str, contact: Contact, origin: Origin) -> str:
        contact_id = super().upsert_contact(tenant, contact, origin)
        self.writes.append(("contact", contact_id, origin))
        return contact_id

    def upsert_invoice(self, tenant: str, invoice: Invoice, origin: Origin) -> str:
        invoice_id = super().upsert_invoice(tenant, invoice, origin)
        self.writes.append(("invoice", invoice_id, origin))
        return invoice_id

    def update_invoice_status(self, tenant: str, invoice_id: str, status: InvoiceStatus, amount_paid: Decimal) -> None:
        super().update_invoice_status(tenant, invoice_id, status, amount_paid)
        self.writes.append(("invoice_status", invoice_id, Origin.QBO))


@dataclass
class Env:
    app: Flask
    host: CountingHost
    sandbox_url: str
    realm: str
    plugin_url: str = ""
    tenant: str = TENANT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> Any:
        return get_state(self.app)

    @contextmanager
    def qbo(self) -> Iterator[QboClient]:
        """A QBO client on the tenant's tokens: what a QBO user (or our outbound side) writes with."""
        with self.app.app_context(), client_for(self.state, self.realm) as client:
            yield client

    def deliver(self, force: bool = False) -> dict[str, Any]:
        answer = requests.post(f"{self.sandbox_url}/_sandbox/webhooks/deliver", json={"force": force}, timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def work(self) -> None:
        """Run every queued job in-process until the queue is empty."""
        state = self.state
        with self.app.app_context():
            SimpleWorker([state.queue], connection=state.redis, serializer=JSONSerializer).work(burst=True)

    def sync(self) -> None:
        """Webhooks out of the sandbox, into the plugin, through the worker."""
        self.deliver()
        self.work()

    def rows(self, table: Any, *where: Any) -> list[Any]:
        with self.state.engine.connect() as conn:
            return list(conn.execute(sa.select(table.__table__).where(*where)).mappings())

    def inbox(self) -> list[Any]:
        return self.rows(InboxNotice)

    def links(self, kind: str) -> list[Any]:
        return self.rows(Link, Link.tenant_id == self.tenant, Link.kind == kind)

    def link(self, kind: str, qbo_id: str) -> Any:
        found = [r for r in self.links(kind) if r["qbo_id"] == qbo_id]
        assert len(found) <= 1
        return found[0] if found else None


@contextmanager
def inbound_env(plugin_config: dict[str, Any], sandbox_url: str, *, webhooks: bool = True,
                webhook_format: str = "legacy", connect: bool = True, **settings: Any) -> Iterator[Env]:
    """A connected tenant whose QBO company sends webhooks to the plugin served on a port."""
    host = CountingHost()
    app = create_app({**plugin_config, **plugin_overrides(sandbox_url)}, host)
    try:
        with serve_in_thread(app) as plugin_url:
            extra: dict[str, Any] = {"webhook_format": webhook_format}
            if webhooks:
                extra["webhook_url"] = plugin_url + WEBHOOK_PATH
            register_app(sandbox_url, **extra)
            realm = create_company(sandbox_url, limits={"enabled": False})
            env = Env(app, host, sandbox_url, realm, plugin_url)
            if connect:
                connect_directly(app, TENANT, sandbox_url, realm, **settings)
            yield env
    finally:
        state = get_state(app)
        state.engine.dispose()
        state.redis.close()


def our_write(env: Env, kind: str, crm_id: str, entity: str, write: Callable[[QboClient], Mapping[str, Any]]) -> dict[str, Any]:
    """A CRM → QBO write as the outbound side records it: the QBO write, then the link (origin crm)
    and the write-ledger row with the owned hash of QBO's answer, in one transaction."""
    with env.qbo() as qbo:
        answer = dict(write(qbo))
    digest = owned_hash(entity, answer)
    links, ledger = Link.__table__, WriteLedger.__table__  # type: ignore[attr-defined]
    with env.state.engine.begin() as conn:
        updated = conn.execute(
            links.update().where(links.c.tenant_id == env.tenant, links.c.kind == kind, links.c.crm_id == crm_id)
            .values(qbo_id=str(answer["Id"]), sync_token=str(answer["SyncToken"]), owned_hash=digest)
        )
        if updated.rowcount == 0:
            conn.execute(links.insert().values(
                tenant_id=env.tenant, kind=kind, crm_id=crm_id, qbo_id=str(answer["Id"]),
                sync_token=str(answer["SyncToken"]), origin="crm", owned_hash=digest, status="synced",
                generation=0, detail={}, updated_at=utcnow(),
            ))
        conn.execute(ledger.insert().values(
            realm_id=env.realm, entity=entity, entity_id=str(answer["Id"]), sync_token=str(answer["SyncToken"]),
            owned_hash=digest, created_at=utcnow(),
        ))
    return answer


def seed(env: Env, entity: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create many QBO records fast for a test's setup: batches of 30 posted straight to the
    sandbox (the plugin's client would pace them at QBO's 40 batches a minute)."""
    from crm_qbo_plugin.qbo import jsoncodec
    from crm_qbo_plugin.runtime.clients import token_manager

    with env.app.app_context():
        token = token_manager(env.state, env.realm).access_token()
    created: list[dict[str, Any]] = []
    for start in range(0, len(bodies), 30):
        items = [{"bId": str(i), "operation": "create", entity: body} for i, body in enumerate(bodies[start:start + 30])]
        answer = requests.post(f"{env.sandbox_url}/v3/company/{env.realm}/batch", data=jsoncodec.dumps({"BatchItemRequest": items}),
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                        "Accept": "application/json"}, timeout=60)
        answer.raise_for_status()
        results = sorted(jsoncodec.loads(answer.content)["BatchItemResponse"], key=lambda r: int(r["bId"]))
        for result in results:
            assert entity in result, result
            created.append(result[entity])
    return created
