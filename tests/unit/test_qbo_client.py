"""QboClient against a scripted transport: URLs, params, retries, errors, paging, CDC, batch."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from crm_qbo_plugin.qbo import (
    AuthenticationError,
    BatchItem,
    DuplicateNameError,
    QboClient,
    ReconnectRequired,
    RetryPolicy,
    StaleObjectError,
    ThrottledError,
    TransientError,
    UnexpectedResponseError,
    ValidationError,
    jsoncodec,
)

REALM = "9130350000000001"
BASE = "https://qbo.example.com"


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    if isinstance(body, bytes):
        resp._content = body
    elif body is None:
        resp._content = b""
    else:
        resp._content = jsoncodec.dumps(body)
    resp.headers.update({"intuit_tid": "tid-" + str(status), **(headers or {})})
    return resp


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    data: bytes | None
    headers: dict[str, str]

    def json(self) -> Any:
        assert self.data is not None
        return jsoncodec.loads(self.data)


@dataclass
class FakeSession:
    """Answers from a script; fails on any call beyond it."""

    script: list[requests.Response | Exception | Callable[[Call], requests.Response]]
    calls: list[Call] = field(default_factory=list)

    def request(self, method: str, url: str, *, params: dict[str, str], data: bytes | None,
                headers: dict[str, str], timeout: Any) -> requests.Response:
        parts = urlsplit(url)
        assert parts.query == ""
        call = Call(method, parts.path, dict(params), data, dict(headers))
        self.calls.append(call)
        assert self.script, f"unexpected request {method} {parts.path}"
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(call)
        return step

    def close(self) -> None:
        pass


class FakeTokens:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.current = tokens[0]
        self.refreshes: list[str] = []

    def access_token(self) -> str:
        return self.current

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        self.refreshes.append(rejected_access_token)
        self.current = self.tokens[len(self.refreshes)]
        return self.current

    def secrets(self) -> tuple[str, ...]:
        return tuple(self.tokens)


class FakeLimiter:
    def __init__(self) -> None:
        self.slots: list[tuple[str, bool]] = []
        self.throttles: list[str] = []

    @contextmanager
    def slot(self, realm_id: str, *, batch: bool = False) -> Iterator[None]:
        self.slots.append((realm_id, batch))
        yield

    def record_throttle(self, realm_id: str, retry_after: float | None = None) -> float:
        self.throttles.append(realm_id)
        return 0.0


def make_client(script: list[Any], tokens: FakeTokens | None = None, **kwargs: Any
                ) -> tuple[QboClient, FakeSession, FakeLimiter, list[float]]:
    session = FakeSession(script)
    limiter = FakeLimiter()
    sleeps: list[float] = []
    client = QboClient(BASE, REALM, tokens or FakeTokens(["tok-A", "tok-B", "tok-C"]), limiter,
                       session=session,  # type: ignore[arg-type]
                       retry=kwargs.pop("retry", RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02)),
                       sleep=sleeps.append, **kwargs)
    return client, session, limiter, sleeps


def fault(code: str, message: str = "m", detail: str = "d") -> dict[str, Any]:
    return {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": "ValidationFault"}}


def test_read_sends_auth_minorversion_and_returns_entity(samples_dir: Path) -> None:
    body = (samples_dir / "customer-read-response.json").read_bytes()
    client, session, limiter, _ = make_client([response(200, body)])
    customer = client.read("Customer", "2")
    assert customer["Id"] == "2"
    [call] = session.calls
    assert (call.method, call.path) == ("GET", f"/v3/company/{REALM}/customer/2")
    assert call.params == {"minorversion": "75"}
    assert call.headers["Authorization"] == "Bearer tok-A"
    assert call.headers["Accept"] == "application/json"
    assert limiter.slots == [(REALM, False)]
    assert isinstance(customer["Balance"], Decimal)


def test_create_carries_requestid_and_exact_decimals(samples_dir: Path) -> None:
    created = (samples_dir / "invoice-create-response.json").read_bytes()
    client, session, _, _ = make_client([response(200, created)])
    amount = Decimal("0.1") + Decimal("0.2")
    invoice = client.create("Invoice", {"Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail"}],
                                        "CustomerRef": {"value": "1"}}, request_id="op-42")
    assert invoice["Id"]
    [call] = session.calls
    assert call.path.endswith("/invoice")
    assert call.params == {"requestid": "op-42", "minorversion": "75"}
    assert b'"Amount":0.3' in (call.data or b"")
    assert call.headers["Content-Type"] == "application/json"


def test_create_generates_a_requestid() -> None:
    client, session, _, _ = make_client([response(200, {"Customer": {"Id": "5"}})])
    client.create("Customer", {"DisplayName": "A"})
    rid = session.calls[0].params["requestid"]
    assert len(rid) == 32 and rid.isalnum()


def test_requestid_is_validated() -> None:
    client, _, _, _ = make_client([])
    with pytest.raises(ValueError):
        client.create("Customer", {"DisplayName": "A"}, request_id="x" * 51)
    with pytest.raises(ValueError):
        client.create("Customer", {"DisplayName": "A"}, request_id="has space")
    with pytest.raises(ValueError):
        client.create("Customer", {"Id": "1", "DisplayName": "A"})


def test_transient_failures_retry_with_the_same_requestid() -> None:
    script = [requests.ConnectionError("reset"), response(503, b"<html>busy</html>"),
              requests.Timeout("slow"), response(200, {"Customer": {"Id": "7"}})]
    client, session, _, sleeps = make_client(script)
    assert client.create("Customer", {"DisplayName": "A"}, request_id="same-id")["Id"] == "7"
    assert [c.params["requestid"] for c in session.calls] == ["same-id"] * 4
    assert len(sleeps) == 3 and all(0 <= s <= 0.02 for s in sleeps)
    assert client.counters.snapshot() == {"requests": 4, "retries": 3, "throttled": 0,
                                          "auth_refreshes": 0, "errors": 0}


def test_retries_are_bounded() -> None:
    client, session, _, _ = make_client([response(500, fault("10000"))] * 4)
    with pytest.raises(TransientError) as info:
        client.read("Customer", "1")
    assert len(session.calls) == 4
    assert info.value.intuit_tid == "tid-500"
    assert client.counters.errors == 1


def test_deadline_stops_retries() -> None:
    client, session, _, _ = make_client([response(500)], retry=RetryPolicy(max_attempts=10, base_delay=5,
                                                                         max_delay=5, deadline=0.0))
    with pytest.raises(TransientError):
        client.read("Customer", "1")
    assert len(session.calls) == 1


def test_throttle_xml_records_cooldown_and_retries(samples_dir: Path) -> None:
    xml = (samples_dir / "fault-throttle-429.xml").read_bytes()
    client, session, limiter, _ = make_client(
        [response(429, xml, {"Content-Type": "application/xml"}), response(200, {"Customer": {"Id": "1"}})])
    assert client.read("Customer", "1") == {"Id": "1"}
    assert limiter.throttles == [REALM]
    assert client.counters.throttled == 1 and client.counters.retries == 1


def test_throttle_gives_up_after_budget(samples_dir: Path) -> None:
    xml = (samples_dir / "fault-throttle-429.xml").read_bytes()
    client, _, limiter, _ = make_client([response(429, xml)] * 2, retry=RetryPolicy(max_attempts=2, base_delay=0))
    with pytest.raises(ThrottledError):
        client.read("Customer", "1")
    assert len(limiter.throttles) == 2


def test_401_refreshes_once_then_retries(samples_dir: Path) -> None:
    body = (samples_dir / "fault-401-authentication-3200.json").read_bytes()
    tokens = FakeTokens(["tok-A", "tok-B", "tok-C"])
    client, session, _, sleeps = make_client([response(401, body), response(200, {"Customer": {"Id": "1"}})], tokens)
    client.read("Customer", "1")
    assert tokens.refreshes == ["tok-A"]
    assert [c.headers["Authorization"] for c in session.calls] == ["Bearer tok-A", "Bearer tok-B"]
    assert sleeps == []
    assert client.counters.auth_refreshes == 1


def test_second_401_gives_up(samples_dir: Path) -> None:
    body = (samples_dir / "fault-401-authentication-3200.json").read_bytes()
    tokens = FakeTokens(["tok-A", "tok-B", "tok-C"])
    client, session, _, _ = make_client([response(401, body), response(401, body)], tokens)
    with pytest.raises(AuthenticationError) as info:
        client.read("Customer", "1")
    assert info.value.code == "3200"
    assert tokens.refreshes == ["tok-A"]
    assert len(session.calls) == 2


def test_reconnect_required_from_token_source_is_not_retried() -> None:
    class Dead(FakeTokens):
        def access_token(self) -> str:
            raise ReconnectRequired("gone")

    client, session, _, _ = make_client([], Dead(["x"]))
    with pytest.raises(ReconnectRequired):
        client.read("Customer", "1")
    assert session.calls == []


@pytest.mark.parametrize(("code", "cls"), [("6240", DuplicateNameError), ("5010", StaleObjectError),
                                           ("2020", ValidationError)])
def test_business_errors_are_not_retried(code: str, cls: type[Exception]) -> None:
    client, session, _, _ = make_client([response(400, fault(code))])
    with pytest.raises(cls):
        client.update("Customer", {"Id": "1", "SyncToken": "0", "DisplayName": "B"})
    assert len(session.calls) == 1


def test_200_with_fault_is_an_error() -> None:
    client, _, _, _ = make_client([response(200, fault("5010", "Stale Object Error"))])
    with pytest.raises(StaleObjectError) as info:
        client.update("Customer", {"Id": "1", "SyncToken": "0"})
    assert info.value.status == 200


def test_200_without_entity_is_an_error() -> None:
    client, _, _, _ = make_client([response(200, {"time": "2020-01-01T00:00:00-07:00"}), response(200, b"<html>")])
    with pytest.raises(UnexpectedResponseError):
        client.read("Invoice", "1")
    with pytest.raises(UnexpectedResponseError):
        client.read("Invoice", "1")


def test_update_is_sparse_by_default_and_requires_synctoken() -> None:
    client, session, _, _ = make_client([response(200, {"Customer": {"Id": "1", "SyncToken": "1"}}),
                                         response(200, {"Customer": {"Id": "1", "SyncToken": "2"}})])
    client.update("Customer", {"Id": "1", "SyncToken": "0", "Notes": "x"}, request_id="r1")
    client.update("Customer", {"Id": "1", "SyncToken": "1", "Notes": "y"}, sparse=False)
    assert session.calls[0].json() == {"Id": "1", "SyncToken": "0", "Notes": "x", "sparse": True}
    assert session.calls[1].json()["sparse"] is False
    with pytest.raises(ValueError):
        client.update("Customer", {"Id": "1"})


def test_delete_and_void_shapes() -> None:
    client, session, _, _ = make_client([
        response(200, {"Invoice": {"status": "Deleted", "Id": "33"}}),
        response(200, {"Invoice": {"Id": "33", "SyncToken": "1"}}),
        response(200, {"Payment": {"Id": "9", "SyncToken": "3"}}),
        response(200, {"SalesReceipt": {"Id": "11", "SyncToken": "2"}}),
    ])
    assert client.delete("Invoice", "33", "0", request_id="d1")["status"] == "Deleted"
    client.void("Invoice", "33", 0, request_id="v1")
    client.void("Payment", "9", "2", request_id="v2")
    client.void("SalesReceipt", "11", "1")
    d, v_inv, v_pay, v_sr = session.calls
    assert d.params == {"operation": "delete", "requestid": "d1", "minorversion": "75"}
    assert d.json() == {"Id": "33", "SyncToken": "0"}
    assert v_inv.params == {"operation": "void", "requestid": "v1", "minorversion": "75"}
    assert v_inv.json() == {"Id": "33", "SyncToken": "0"}
    assert v_pay.params == {"operation": "update", "include": "void", "requestid": "v2", "minorversion": "75"}
    assert v_pay.json() == {"Id": "9", "SyncToken": "2", "sparse": True}
    assert v_sr.path.endswith("/salesreceipt") and v_sr.json()["sparse"] is True
    with pytest.raises(ValueError):
        client.void("Customer", "1", "0")


def test_send_invoice() -> None:
    client, session, _, _ = make_client([response(200, {"Invoice": {"Id": "5", "EmailStatus": "EmailSent"}})])
    assert client.send_invoice("5", to="ap@example.com", request_id="s1")["EmailStatus"] == "EmailSent"
    [call] = session.calls
    assert call.path == f"/v3/company/{REALM}/invoice/5/send"
    assert call.params == {"requestid": "s1", "sendTo": "ap@example.com", "minorversion": "75"}
    assert call.headers["Content-Type"] == "application/octet-stream"


def test_company_info_and_preferences(samples_dir: Path) -> None:
    client, session, _, _ = make_client([
        response(200, (samples_dir / "companyinfo-read-response.json").read_bytes()),
        response(200, (samples_dir / "preferences-read-response.json").read_bytes()),
    ])
    assert client.company_info()["Id"]
    assert "CurrencyPrefs" in client.preferences()
    assert session.calls[0].path == f"/v3/company/{REALM}/companyinfo/{REALM}"
    assert session.calls[1].path == f"/v3/company/{REALM}/preferences"


def test_query_posts_statement_as_utf8_text(samples_dir: Path) -> None:
    client, session, _, _ = make_client([
        response(200, (samples_dir / "customer-query-response.json").read_bytes()),
        response(200, {"QueryResponse": {}, "time": "2020-01-01T00:00:00Z"}),
    ])
    rows = client.query("SELECT * FROM Customer WHERE DisplayName = 'Zoë'")
    assert rows and all("Id" in r for r in rows)
    assert session.calls[0].data == "SELECT * FROM Customer WHERE DisplayName = 'Zoë'".encode()
    assert session.calls[0].headers["Content-Type"] == "application/text"
    assert client.query("SELECT * FROM Customer WHERE Id = '999'") == []


def _page(entity: str, n: int, start: int) -> dict[str, Any]:
    rows = [{"Id": str(start + i)} for i in range(n)]
    return {"QueryResponse": {entity: rows, "startPosition": start, "maxResults": n} if n else {}}


def test_query_pages_stops_on_a_short_page() -> None:
    client, session, _, _ = make_client([response(200, _page("Customer", 1000, 1)),
                                         response(200, _page("Customer", 1000, 1001)),
                                         response(200, _page("Customer", 3, 2001))])
    pages = list(client.query_pages("Customer", {"Active": True}))
    assert [len(p) for p in pages] == [1000, 1000, 3]
    assert [c.data for c in session.calls] == [
        f"SELECT * FROM Customer WHERE Active = true STARTPOSITION {s} MAXRESULTS 1000".encode()
        for s in (1, 1001, 2001)]


def test_query_pages_exact_multiple_ends_with_empty_page() -> None:
    client, session, _, _ = make_client([response(200, _page("Item", 1000, 1)), response(200, _page("Item", 0, 1001))])
    assert [len(p) for p in client.query_pages("Item")] == [1000]
    assert len(session.calls) == 2


def test_count() -> None:
    client, session, _, _ = make_client([response(200, {"QueryResponse": {"totalCount": 1234}})])
    assert client.count("Customer", {"Active": True}) == 1234
    assert session.calls[0].data == b"SELECT COUNT(*) FROM Customer WHERE Active = true"


def test_cdc_parses_sample_with_deleted_stub(samples_dir: Path) -> None:
    client, session, _, _ = make_client([
        response(200, (samples_dir / "cdc-response-intuit-docs.json").read_bytes()),
        response(200, (samples_dir / "cdc-response-empty.json").read_bytes()),
    ])
    since = datetime(2015, 12, 1, 12, 0, tzinfo=UTC)
    changes = client.cdc(["Customer", "Estimate", "Invoice"], since)
    assert [c["Id"] for c in changes["Customer"]] == ["63", "99"]
    assert changes["Estimate"][-1] == {"status": "Deleted", "domain": "QBO", "Id": "979",
                                       "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50-08:00"}}
    assert changes["Invoice"] == []
    assert session.calls[0].params == {"entities": "Customer,Estimate,Invoice",
                                       "changedSince": "2015-12-01T12:00:00+00:00", "minorversion": "75"}
    assert client.cdc(["Customer"], since) == {"Customer": []}


def test_batch_splits_at_30_and_matches_by_bid() -> None:
    def answer(call: Call) -> requests.Response:
        items = call.json()["BatchItemRequest"]
        out = []
        for item in reversed(items):  # QBO does not keep the order
            if item["Customer"]["DisplayName"] == "dup":
                out.append({"bId": item["bId"], **fault("6240", "Duplicate Name Exists Error")})
            else:
                out.append({"bId": item["bId"], "Customer": {"Id": item["Customer"]["DisplayName"]}})
        return response(200, {"BatchItemResponse": out})

    client, session, limiter, _ = make_client([answer, answer, answer])
    items = [BatchItem.create("Customer", {"DisplayName": "dup" if i == 40 else str(i)}) for i in range(65)]
    results = client.batch(items, request_id="batch-1")
    assert [len(c.json()["BatchItemRequest"]) for c in session.calls] == [30, 30, 5]
    assert [c.params["requestid"] for c in session.calls] == ["batch-1-0", "batch-1-1", "batch-1-2"]
    assert all(batch for _, batch in limiter.slots)
    assert len(results) == 65
    assert [r.entity["Id"] for r in results if r.ok] == [str(i) for i in range(65) if i != 40]  # type: ignore[index]
    assert isinstance(results[40].error, DuplicateNameError)


def test_batch_request_ids_are_unique_per_chunk_without_caller_id() -> None:
    ok = lambda call: response(200, {"BatchItemResponse": [  # noqa: E731
        {"bId": i["bId"], "QueryResponse": {}} for i in call.json()["BatchItemRequest"]]})
    client, session, _, _ = make_client([ok, ok])
    results = client.batch([BatchItem.query("select * from Item")] * 31)
    ids = [c.params["requestid"] for c in session.calls]
    assert len(set(ids)) == 2 and all(len(i) <= 36 for i in ids)
    assert all(r.rows == [] for r in results)


def test_logs_never_hold_tokens_or_query_text(caplog: pytest.LogCaptureFixture, samples_dir: Path) -> None:
    body = (samples_dir / "fault-401-authentication-3200.json").read_bytes()
    tokens = FakeTokens(["CANARY-ACCESS-1", "CANARY-ACCESS-2", "CANARY-ACCESS-3"])
    echo = json.dumps(fault("3200", "Token CANARY-ACCESS-2 rejected", "Bearer CANARY-ACCESS-2")).encode()
    client, _, _, _ = make_client([response(401, body), response(401, echo)], tokens)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as info:
        client.query("SELECT * FROM Customer WHERE PrimaryEmailAddr = 'secret.person@example.com'")
    text = caplog.text + str(info.value) + repr(info.value) + repr(info.value.errors)
    assert "CANARY" not in text
    assert "secret.person" not in caplog.text
    assert "tid-401" in caplog.text
