"""The harness's own QBO calls (changes made "in QuickBooks" and correctness checks), with its own
app registration so they never count as the plugin's; the sandbox's stats are reset around them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import requests

from bench.infra import Sandbox

HARNESS_CLIENT = "bench-harness"
PAGE = 1000
BATCH = 30


def register_harness(sandbox: Sandbox) -> None:
    requests.post(f"{sandbox.url}/_sandbox/apps", json={
        "client_id": HARNESS_CLIENT, "client_secret": "bench-harness-secret-0123456789",
        "redirect_uris": ["http://127.0.0.1/unused"], "name": "bench harness"}, timeout=30).raise_for_status()


class Rest:
    def __init__(self, sandbox: Sandbox, realm: str) -> None:
        register_harness(sandbox)
        self.base = sandbox.v3(realm)
        self.session = requests.Session()
        token = sandbox.token(realm, HARNESS_CLIENT)["access_token"]
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def query(self, statement: str) -> dict[str, Any]:
        answer = self.session.get(f"{self.base}/query", params={"query": statement, "minorversion": "75"}, timeout=120)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()["QueryResponse"]
        return data

    def count(self, entity: str) -> int:
        return int(self.query(f"SELECT COUNT(*) FROM {entity}").get("totalCount", 0))

    def all(self, entity: str, where: str = "") -> Iterator[dict[str, Any]]:
        start = 1
        while True:
            page = self.query(f"SELECT * FROM {entity} {where} ORDER BY Id STARTPOSITION {start} MAXRESULTS {PAGE}")
            rows: list[dict[str, Any]] = page.get(entity, [])
            yield from rows
            if len(rows) < PAGE:
                return
            start += PAGE

    def batch(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run `items` 30 at a time; raises if any item faulted."""
        answers: list[dict[str, Any]] = []
        for start in range(0, len(items), BATCH):
            chunk = [{"bId": str(start + i), **item} for i, item in enumerate(items[start:start + BATCH])]
            answer = self.session.post(f"{self.base}/batch", params={"minorversion": "75"},
                                       json={"BatchItemRequest": chunk}, timeout=120)
            answer.raise_for_status()
            for entry in answer.json()["BatchItemResponse"]:
                if "Fault" in entry:
                    raise RuntimeError(f"harness batch item failed: {entry['Fault']}")
                answers.append(entry)
        return answers
