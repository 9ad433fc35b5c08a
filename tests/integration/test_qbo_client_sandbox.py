"""QboClient + TokenManager + RedisLimiter against the real QBO sandbox and a real Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
import requests

from crm_qbo_plugin.qbo import (
    BatchItem,
    Counters,
    DuplicateNameError,
    IntuitTokenEndpoint,
    LimiterConfig,
    NotFoundError,
    QboClient,
    ReconnectRequired,
    RedisLimiter,
    RetryPolicy,
    StaleObjectError,
    TokenManager,
    Tokens,
    TransientError,
    eq,
    gt,
    in_,
)
from crm_qbo_plugin.qbo.oauth import clear_discovery_cache

CLIENT_ID = "it-client"
CLIENT_SECRET = "it-secret-value-0001"


def now() -> datetime:
    return datetime.now(UTC)


class LockedDictStore:
    """A TokenStore that behaves like a database row per realm: locked, reads return copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        self.saves: list[str] = []

    def load(self, realm_key: str) -> Tokens | None:
        with self._lock:
            row = self._rows.get(realm_key)
            return None if row is None else Tokens(**dict(row))

    def save(self, realm_key: str, tokens: Tokens) -> None:
        with self._lock:
            self._rows[realm_key] = {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "access_expires_at": tokens.access_expires_at,
                "refresh_expires_at": tokens.refresh_expires_at,
            }
            self.saves.append(realm_key)


@dataclass
class Sandbox:
    url: str

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        response = requests.post(f"{self.url}{path}", json=payload, timeout=30)
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        return response.json()

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}{path}", timeout=30)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def company(self, **spec: Any) -> str:
        return str(self.post("/_sandbox/companies", spec)["realmId"])

    def tokens(self, realm_id: str) -> dict[str, Any]:
        return dict(self.post("/_sandbox/tokens", {"realm_id": realm_id, "client_id": CLIENT_ID}))

    def fault(self, **spec: Any) -> Any:
        return self.post("/_sandbox/faults", spec)

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/_sandbox/stats"))

    @property
    def discovery(self) -> str:
        return f"{self.url}/.well-known/openid_configuration"


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[Sandbox]:
    clear_discovery_cache()
    box = Sandbox(sandbox_url)
    box.post("/_sandbox/apps", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                "redirect_uris": ["http://localhost/callback"]})
    yield box
    clear_discovery_cache()


@pytest.fixture
def rds(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def tokens_from(payload: dict[str, Any], *, expired: bool = False, access: str | None = None,
                refresh: str | None = None) -> Tokens:
    expires = now() - timedelta(minutes=5) if expired else now() + timedelta(seconds=int(payload["expires_in"]))
    return Tokens(access or payload["access_token"], refresh or payload["refresh_token"], expires,
                  now() + timedelta(days=100))


FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, deadline=60)


def build_client(sandbox: Sandbox, realm: str, store: Any, rds: redis.Redis, *,
                 limiter: RedisLimiter | None = None, counters: Counters | None = None,
                 retry: RetryPolicy = FAST_RETRY) -> tuple[QboClient, TokenManager]:
    endpoint = IntuitTokenEndpoint(CLIENT_ID, CLIENT_SECRET, sandbox.discovery, timeout=10)
    manager = TokenManager(realm, store, endpoint, rds)
    client = QboClient(sandbox.url, realm, manager,
                       limiter or RedisLimiter(rds, LimiterConfig(cooldown_seconds=0.2, poll_interval=0.01)),
                       timeout=(5, 30), retry=retry, counters=counters)
    return client, manager


def connected(sandbox: Sandbox, rds: redis.Redis, **company: Any) -> tuple[QboClient, str, LockedDictStore]:
    realm = sandbox.company(**company)
    store = LockedDictStore()
    store.save(realm, tokens_from(sandbox.tokens(realm)))
    client, _ = build_client(sandbox, realm, store, rds)
    return client, realm, store


def token_calls(stats: dict[str, Any]) -> int:
    value = stats.get("token_endpoint_calls")
    if value is None:
        value = stats["oauth"]["token_endpoint_calls"]
    return int(value)


def run_parallel(n: int, work: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def runner(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [], errors[:3]
    return results


# ---------------------------------------------------------------------------------------------


def test_25_callers_with_expired_token_refresh_once(sandbox: Sandbox, rds: redis.Redis) -> None:
    realm = sandbox.company()
    store = LockedDictStore()
    store.save(realm, tokens_from(sandbox.tokens(realm), expired=True))
    before = token_calls(sandbox.stats())

    def work(i: int) -> str:
        client, _ = build_client(sandbox, realm, store, rds)
        with client:
            return str(client.company_info()["Id"])

    results = run_parallel(25, work)
    assert len(results) == 25 and all(results)
    assert token_calls(sandbox.stats()) - before == 1
    # The stored refresh token is the newest one: it still refreshes (a superseded one would not).
    latest = store.load(realm)
    assert latest is not None
    fresh = IntuitTokenEndpoint(CLIENT_ID, CLIENT_SECRET, sandbox.discovery).refresh(latest.refresh_token)
    assert fresh.access_token != latest.access_token


def test_injected_429s_all_complete_and_in_flight_stays_under_10(sandbox: Sandbox, rds: redis.Redis) -> None:
    realm = sandbox.company()
    store = LockedDictStore()
    store.save(realm, tokens_from(sandbox.tokens(realm)))
    sandbox.fault(path=f"/v3/company/{realm}/companyinfo/{realm}", status=429, probability=0.25)
    counters = Counters()
    limiter_config = LimiterConfig(cooldown_seconds=0.2, cooldown_jitter=0.5, poll_interval=0.01)

    def work(i: int) -> int:
        client, _ = build_client(sandbox, realm, store, rds, counters=counters,
                                 limiter=RedisLimiter(redis.Redis(connection_pool=rds.connection_pool),
                                                      limiter_config),
                                 retry=RetryPolicy(max_attempts=30, base_delay=0.01, max_delay=0.05,
                                                   deadline=120))
        with client:
            for _ in range(4):
                client.company_info()
        return 4

    assert sum(run_parallel(25, work)) == 100
    assert counters.throttled > 0
    assert counters.requests == 100 + counters.throttled
    stats = sandbox.stats()
    assert max_in_flight(stats, realm) <= 10


def max_in_flight(stats: dict[str, Any], realm: str) -> int:
    realms = stats.get("realms") or stats.get("by_realm") or {}
    if realm in realms and isinstance(realms[realm], dict):
        entry = realms[realm]
        for key in ("max_in_flight", "max_concurrent", "peak_in_flight"):
            if key in entry:
                return int(entry[key])
    value = stats.get("max_in_flight", {})
    return int(value[realm] if isinstance(value, dict) else value)


def test_superseded_refresh_token_raises_reconnect_without_retry(sandbox: Sandbox, rds: redis.Redis) -> None:
    realm = sandbox.company()
    issued = sandbox.tokens(realm)
    endpoint = IntuitTokenEndpoint(CLIENT_ID, CLIENT_SECRET, sandbox.discovery)
    endpoint.refresh(issued["refresh_token"])  # rotates: the original is now superseded
    store = LockedDictStore()
    store.save(realm, tokens_from(issued, expired=True))
    client, manager = build_client(sandbox, realm, store, rds)
    before = token_calls(sandbox.stats())
    with pytest.raises(ReconnectRequired) as info:
        client.read("Customer", "1")
    assert info.value.code == "invalid_grant"
    assert token_calls(sandbox.stats()) - before == 1
    assert client.counters.requests == 0
    assert manager.refreshes == 1


def test_401_after_clock_jump_refreshes_once_and_succeeds(sandbox: Sandbox, rds: redis.Redis) -> None:
    client, realm, store = connected(sandbox, rds)
    sandbox.post("/_sandbox/clock", {"advance_seconds": 3700})  # sandbox says expired; we do not know
    before = token_calls(sandbox.stats())
    assert client.company_info()["Id"]
    assert token_calls(sandbox.stats()) - before == 1
    assert client.counters.auth_refreshes == 1


def test_entity_round_trips(sandbox: Sandbox, rds: redis.Redis) -> None:
    client, realm, _ = connected(sandbox, rds)
    name = "Zoë O'Brien\\ ’s Café"
    created = client.create("Customer", {"DisplayName": name,
                                         "PrimaryEmailAddr": {"Address": "zoe.o'brien@example.com"}},
                            request_id="cust-create-1")
    assert created["DisplayName"] == name
    again = client.create("Customer", {"DisplayName": name}, request_id="cust-create-1")  # replay
    assert again["Id"] == created["Id"]

    found = client.query_all("Customer", {"PrimaryEmailAddr": "zoe.o'brien@example.com"})
    assert [c["Id"] for c in found] == [created["Id"]]
    assert [c["Id"] for c in client.query_all("Customer", {"DisplayName": name})] == [created["Id"]]

    read = client.read("Customer", created["Id"])
    updated = client.update("Customer", {"Id": read["Id"], "SyncToken": read["SyncToken"],
                                         "Notes": "VIP"}, request_id="cust-upd-1")
    assert updated["Notes"] == "VIP" and updated["DisplayName"] == name
    assert int(updated["SyncToken"]) == int(read["SyncToken"]) + 1
    with pytest.raises(StaleObjectError):
        client.update("Customer", {"Id": read["Id"], "SyncToken": read["SyncToken"], "Notes": "x"})
    with pytest.raises(DuplicateNameError):
        client.create("Customer", {"DisplayName": name})
    with pytest.raises(NotFoundError):
        client.read("Customer", "999999")

    amount = Decimal("0.1") + Decimal("0.2")
    line = {"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal("3"), "UnitPrice": Decimal("0.1")}}
    line2 = {"Amount": Decimal("1234567.89"), "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": Decimal("1"),
                                     "UnitPrice": Decimal("1234567.89")}}
    invoice = client.create("Invoice", {"CustomerRef": {"value": created["Id"]}, "Line": [line, line2]},
                            request_id="inv-1")
    assert invoice["TotalAmt"] == Decimal("1234568.19")
    assert isinstance(invoice["Balance"], Decimal) and invoice["Balance"] == Decimal("1234568.19")

    payment = client.create("Payment", {"CustomerRef": {"value": created["Id"]}, "TotalAmt": Decimal("0.30"),
                                        "Line": [{"Amount": Decimal("0.30"), "LinkedTxn": [
                                            {"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert client.read("Invoice", invoice["Id"])["Balance"] == Decimal("1234567.89")
    voided_payment = client.void("Payment", payment["Id"], payment["SyncToken"])
    assert voided_payment["TotalAmt"] == 0

    current = client.read("Invoice", invoice["Id"])
    voided = client.void("Invoice", current["Id"], current["SyncToken"], request_id="inv-void-1")
    assert voided["Balance"] == 0 and voided["TotalAmt"] == 0

    receipt = client.create("SalesReceipt", {"CustomerRef": {"value": created["Id"]}, "Line": [line]})
    assert receipt["TotalAmt"] == Decimal("0.3")
    deleted = client.delete("SalesReceipt", receipt["Id"], receipt["SyncToken"])
    assert deleted["status"] == "Deleted"
    with pytest.raises(NotFoundError):
        client.read("SalesReceipt", receipt["Id"])

    info = client.company_info()
    assert info["Id"]
    assert "CurrencyPrefs" in client.preferences()


def test_send_invoice(sandbox: Sandbox, rds: redis.Redis) -> None:
    client, _, _ = connected(sandbox, rds)
    customer = client.create("Customer", {"DisplayName": "Mailable",
                                          "PrimaryEmailAddr": {"Address": "ap@example.com"}})
    invoice = client.create("Invoice", {"CustomerRef": {"value": customer["Id"]},
                                        "BillEmail": {"Address": "ap@example.com"},
                                        "Line": [{"Amount": Decimal("10.00"), "DetailType": "SalesItemLineDetail",
                                                  "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    sent = client.send_invoice(invoice["Id"], to="billing@example.com")
    assert sent["EmailStatus"] == "EmailSent"


def test_batch_paging_count_and_cdc(sandbox: Sandbox, rds: redis.Redis) -> None:
    client, realm, _ = connected(sandbox, rds)
    since = now() - timedelta(minutes=1)
    items = [BatchItem.create("Customer", {"DisplayName": f"Bulk {i:04d}"}) for i in range(1005)]
    results = client.batch(items)
    assert len(results) == 1005 and all(r.ok for r in results), [r.error for r in results if r.error][:3]
    ids = [r.entity["Id"] for r in results]  # type: ignore[index]
    assert len(set(ids)) == 1005

    pages = list(client.query_pages("Customer", [gt("MetaData.CreateTime", since)]))
    assert [len(p) for p in pages] == [1000, 5]
    assert {c["Id"] for p in pages for c in p} == set(ids)
    assert client.count("Customer", [gt("MetaData.CreateTime", since)]) == 1005
    assert client.count("Customer", [in_("Id", ids[:3])]) == 3

    # per-item faults come back as the same error classes
    first = results[0].entity
    assert first is not None
    mixed = client.batch([
        BatchItem.create("Customer", {"DisplayName": "Bulk 0001"}, bid="dup"),
        BatchItem.update("Customer", {"Id": first["Id"], "SyncToken": "99", "Notes": "x"}, bid="stale"),
        BatchItem.update("Customer", {"Id": first["Id"], "SyncToken": first["SyncToken"], "Notes": "y"}, bid="ok"),
        BatchItem.query(f"SELECT * FROM Customer WHERE Id = '{first['Id']}'", bid="q"),
    ])
    by_bid = {r.bid: r for r in mixed}
    assert isinstance(by_bid["dup"].error, DuplicateNameError)
    assert isinstance(by_bid["stale"].error, StaleObjectError)
    assert by_bid["ok"].ok and by_bid["ok"].entity["Notes"] == "y"  # type: ignore[index]
    assert by_bid["q"].rows and by_bid["q"].rows[0]["Id"] == first["Id"]

    invoice = client.create("Invoice", {"CustomerRef": {"value": first["Id"]}, "Line": [
        {"Amount": Decimal("5.00"), "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    client.delete("Invoice", invoice["Id"], invoice["SyncToken"])
    capped = client.cdc(["Customer", "Invoice"], since)
    assert sum(len(v) for v in capped.values()) == 1000  # QBO's cap, shared by all entities
    changes = client.cdc(["Invoice"], since)
    assert changes["Invoice"] == [{"status": "Deleted", "domain": "QBO", "Id": invoice["Id"],
                                   "MetaData": changes["Invoice"][0]["MetaData"]}]
    assert client.query_all("Customer", [eq("DisplayName", "Bulk 0002")])[0]["Id"] == ids[2]


def test_canary_secret_never_leaks(sandbox: Sandbox, rds: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canary_access = "eyJCANARYaccess" + "Z" * 40
    canary_refresh = "AB11CANARYrefresh" + "Q" * 30
    realm = sandbox.company()
    issued = sandbox.tokens(realm)
    store = LockedDictStore()
    texts: list[str] = []

    # 1. a 401 for a bogus access token, then a refresh with the real refresh token
    store.save(realm, tokens_from(issued, access=canary_access))
    client, _ = build_client(sandbox, realm, store, rds)
    assert client.company_info()["Id"]
    assert client.counters.auth_refreshes == 1

    # 2. 500s until the retry budget is spent
    sandbox.fault(path=f"/v3/company/{realm}/customer/1", status=500, times=50)
    client2, _ = build_client(sandbox, realm, store, rds,
                              retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    with pytest.raises(TransientError) as transient:
        client2.read("Customer", "1")
    texts += [str(transient.value), repr(transient.value)]

    # 3. 401 twice with canary tokens everywhere, ending in invalid_grant
    store.save(realm, Tokens(canary_access, canary_refresh, now() + timedelta(hours=1)))
    client3, _ = build_client(sandbox, realm, store, rds)
    with pytest.raises(ReconnectRequired) as reconnect:
        client3.company_info()  # not the faulted path: this one reaches the 401
    texts += [str(reconnect.value), repr(reconnect.value), repr(store.load(realm))]

    everything = caplog.text + "\n".join(texts) + "".join(repr(r.__dict__) for r in caplog.records)
    assert "CANARY" not in everything
    assert "intuit_tid=" in caplog.text
    assert rds.keys("*CANARY*") == []
    for key in rds.keys("*"):
        kind = rds.type(key)
        value = rds.get(key) if kind == b"string" else repr(rds.zrange(key, 0, -1) if kind == b"zset" else b"")
        assert b"CANARY" not in (value if isinstance(value, bytes) else str(value).encode())


def test_lost_response_then_retry_with_same_requestid_creates_once(sandbox: Sandbox, rds: redis.Redis) -> None:
    client, realm, store = connected(sandbox, rds)
    sandbox.fault(path=f"/v3/company/{realm}/customer", method="POST", latency_ms=800, times=1)
    impatient, _ = build_client(sandbox, realm, store, rds, retry=RetryPolicy(max_attempts=1))
    impatient.timeout = (5, 0.3)
    with pytest.raises(TransientError):
        impatient.create("Customer", {"DisplayName": "Exactly Once"}, request_id="op-77")
    time.sleep(1.0)  # the first request completes on the server after we gave up
    again = client.create("Customer", {"DisplayName": "Exactly Once"}, request_id="op-77")
    assert client.count("Customer", {"DisplayName": "Exactly Once"}) == 1
    assert client.read("Customer", again["Id"])["DisplayName"] == "Exactly Once"


def test_connection_resets_are_retried(sandbox: Sandbox, rds: redis.Redis) -> None:
    client, realm, _ = connected(sandbox, rds)
    sandbox.fault(path=f"/v3/company/{realm}/companyinfo", reset=True, times=2)
    assert client.company_info()["Id"]
    assert client.counters.retries == 2
