"""Canary secrets through the whole plugin with real processes (F37).

The client secret, the webhook verifier token, the connection's access and refresh tokens (and the
ones a refresh issues later) and a customer's e-mail are canaries. A run full of errors follows —
500s and dropped connections from QuickBooks, 401s after every token expired, the token endpoint
failing and finally answering invalid_grant, exceptions in workers — through a web process, two
workers and the scheduler. Then no canary may appear in any process's log, in any rq job, or in any
Redis key or value. (The QBO client's own, narrower canary test: test_qbo_client_sandbox.py.)
"""

from __future__ import annotations

import time
import uuid

import requests
import sqlalchemy as sa
from rq.suspension import resume, suspend

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import Connection, OutboxEvent
from crm_qbo_plugin.store.token_store import DbTokenStore
from tests.harness.stack import stack
from tests.harness.workload import Crm


def _tokens(st, realm: str) -> list[str]:
    state = get_state(st.app())
    tokens = DbTokenStore(state.engine, state.cipher).load(realm)
    return [tokens.access_token, tokens.refresh_token] if tokens else []


def _redis_dump(st) -> list[bytes]:
    """Every key and every value in Redis, whatever its type."""
    client = st.redis()
    out: list[bytes] = []
    try:
        for key in client.scan_iter("*"):
            out.append(key)
            kind = client.type(key)
            if kind == b"string":
                out.append(client.get(key) or b"")
            elif kind == b"hash":
                out += [b"%s=%s" % (k, v) for k, v in client.hgetall(key).items()]
            elif kind == b"list":
                out += client.lrange(key, 0, -1)
            elif kind == b"set":
                out += list(client.smembers(key))
            elif kind == b"zset":
                out += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == b"stream":
                out += [repr(e).encode() for e in client.xrange(key)]
    finally:
        client.close()
    return out


def _fault(st, **spec) -> None:
    requests.post(f"{st.sandbox_url}/_sandbox/faults", json=spec, timeout=10).raise_for_status()


def _settled(st, seconds: float) -> None:
    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with st.engine.connect() as conn:
            open_rows = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.status == "processing")).scalar_one()
        if not open_rows and not len(get_state(st.app()).queue):
            return
        time.sleep(0.3)


def test_no_canary_in_logs_jobs_or_redis_after_a_run_full_of_errors(database_url):
    email = f"canary-{uuid.uuid4().hex}@example.com"
    with stack(workers=2, schedulers=1, database_url=database_url) as st:
        location, key, realm = st.new_tenant("Canary", import_invoices=True)
        canaries = {"client secret": st.secrets["client_secret"], "verifier token": st.secrets["verifier"],
                    "customer e-mail": email}
        first = _tokens(st, realm)
        canaries.update({"access token": first[0], "refresh token": first[1]})
        crm = Crm(st.web_url, key)

        def invoice_for(contact_id: str) -> None:
            draft = crm.call("POST", "/invoices", {"contact_id": contact_id, "lines": [
                {"name": "Canary work", "quantity": "1", "unit_price": "12.50"}]})
            crm.call("POST", f"/invoices/{draft['id']}/send")

        # 500s and dropped connections while the first contact and invoice are pushed
        _fault(st, path="/v3/", code=10000, message="An application error has occurred", probability=0.5)
        _fault(st, path="/v3/", reset=True, probability=0.3)
        contact = crm.call("POST", "/contacts", {"first_name": "Canary", "email": email})
        invoice_for(contact["id"])
        # a bad e-mail on a QuickBooks customer and a hostile webhook: validation errors and dead letters
        requests.post(f"{st.web_url}/integrations/quickbooks/webhooks", data=b'{"eventNotifications": [',
                      headers={"intuit-signature": "forged"}, timeout=10)
        _settled(st, 20)
        requests.delete(f"{st.sandbox_url}/_sandbox/faults", timeout=10).raise_for_status()
        # every access token expires: 401s, a refresh (its new tokens are canaries too) …
        requests.post(f"{st.sandbox_url}/_sandbox/clock", json={"advance_seconds": 3700}, timeout=10).raise_for_status()
        _fault(st, path="/oauth2/v1/tokens/bearer", status=503, body='{"error":"temporarily_unavailable"}', times=2)
        crm.call("PATCH", f"/contacts/{contact['id']}", {"phone": "555-0199"})
        invoice_for(contact["id"])
        _settled(st, 40)
        canaries.update(dict(zip(("refreshed access token", "refreshed refresh token"), _tokens(st, realm), strict=False)))
        # … and then the refresh token is refused: invalid_grant
        requests.post(f"{st.sandbox_url}/_sandbox/clock", json={"advance_seconds": 3700}, timeout=10).raise_for_status()
        _fault(st, path="/oauth2/v1/tokens/bearer", status=400,
               body='{"error":"invalid_grant","error_description":"Incorrect or invalid refresh token"}')
        invoice_for(contact["id"])
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            with st.engine.connect() as conn:
                status = conn.execute(sa.select(Connection.status).where(Connection.tenant_id == location)).scalar_one()  # type: ignore[call-overload]
            if status == "needs_reconnect":
                break
            time.sleep(0.3)
        assert status == "needs_reconnect"

        logs = {path.name: path.read_bytes() for path in (st.workdir / "logs").glob("*.log")}
        assert {"web.log", "worker-0.log", "worker-1.log", "scheduler-0.log"} <= set(logs)
        assert any(b"qbo.request.failed" in body or b"qbo.request.retrying" in body for body in logs.values())
        # Finished jobs keep no result (result_ttl=0): hold the workers so a queued job is there to inspect.
        client = st.redis()
        suspend(client)
        try:
            crm.call("PATCH", f"/contacts/{contact['id']}", {"phone": "555-0123"})
            deadline = time.monotonic() + 20
            while not client.keys("rq:job:*") and time.monotonic() < deadline:
                time.sleep(0.1)
            dump = _redis_dump(st)
        finally:
            resume(client)
        assert any(k.startswith(b"rq:job:") for k in dump), "a queued rq job was there to inspect"
        for name, value in canaries.items():
            assert len(value) >= 16, name
            needle = value.encode()
            leaks = [log for log, body in logs.items() if needle in body]
            assert not leaks, f"the {name} appears in {leaks}"
            assert not [item for item in dump if needle in item], f"the {name} appears in Redis"
