"""Per-realm throttling over real HTTP: per minute, in flight, batches; stats."""

from __future__ import annotations

import threading
from typing import Any

import requests

from tests.sandbox.conftest import LiveRealm


def _patch(live: LiveRealm, **payload: Any) -> None:
    resp = requests.patch(f"{live.base}/_sandbox/companies/{live.realm}", json=payload, timeout=10)
    assert resp.status_code == 200, resp.text


def test_per_minute_limit_gives_xml_429_and_resets_after_a_minute(live: LiveRealm) -> None:
    _patch(live, limits={"per_minute": 3})
    statuses = [requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10)
    assert resp.status_code == 429
    assert resp.headers["Content-Type"] == "application/xml"
    assert b'<Error code="3001">' in resp.content
    assert b"statusCode=429" in resp.content
    requests.post(f"{live.base}/_sandbox/clock", json={"advance_seconds": 61}, timeout=10)
    assert requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10).status_code == 200
    stats = requests.get(f"{live.base}/_sandbox/stats", timeout=10).json()
    assert stats["throttled"] == 2
    assert stats["by_status"] == {"200": 4, "429": 2}
    assert stats["by_realm"] == {live.realm: 6}
    assert stats["by_endpoint"]["item.read"] == 4


def test_batches_per_minute(live: LiveRealm) -> None:
    _patch(live, limits={"batch_per_minute": 2})
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Item"}]}
    statuses = [requests.post(f"{live.v3}/batch", json=body, headers=live.headers,
                              timeout=10).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert requests.get(f"{live.v3}/item/1", headers=live.headers, timeout=10).status_code == 200


def test_in_flight_limit_and_max_in_flight_stat(live: LiveRealm) -> None:
    _patch(live, limits={"concurrent": 2})
    requests.post(f"{live.base}/_sandbox/latency", json={"latency_ms": 400}, timeout=10)
    results: list[int] = []

    def call() -> None:
        results.append(requests.get(f"{live.v3}/item/1", headers=live.headers,
                                    timeout=10).status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 429, 429]
    stats = requests.get(f"{live.base}/_sandbox/stats", params={"reset": "1"}, timeout=10).json()
    assert stats["max_in_flight"] == {live.realm: 2}
    after = requests.get(f"{live.base}/_sandbox/stats", timeout=10).json()
    assert after["requests"] == 0 and after["throttled"] == 0
