"""Batch items and their results (``POST /batch``: at most 30 items, each answered on its own).

A batch answers HTTP 200 even when items fail; each failed item carries its own Fault, which is
turned into the same error classes as a single call (5010 → ``StaleObjectError``, ...). Items are
independent and unordered on QBO's side, and answers are matched back by ``bId``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_qbo_plugin.qbo.errors import (
    QboError,
    UnexpectedResponseError,
    error_from_fault,
    parse_fault,
)
from crm_qbo_plugin.qbo.query import validate_name

__all__ = ["MAX_BATCH_ITEMS", "BatchItem", "BatchResult", "assign_bids", "parse_batch_response"]

MAX_BATCH_ITEMS = 30
MAX_BID_LENGTH = 10  # when the batch carries a requestid (qbo-api.md §1.7)


@dataclass(frozen=True)
class BatchItem:
    """One operation in a batch. Build with the ``create``/``update``/``delete``/``query`` helpers."""

    operation: str  # "create" | "update" | "delete" | "query"
    entity: str | None = None
    body: Mapping[str, Any] | None = None
    statement: str | None = None
    bid: str | None = None
    options: str | None = None  # QBO's optionsData, e.g. "include=allowduplicatedocnum"

    @classmethod
    def create(cls, entity: str, body: Mapping[str, Any], *, bid: str | None = None) -> BatchItem:
        return cls("create", validate_name(entity, "entity"), dict(body), bid=bid)

    @classmethod
    def update(
        cls, entity: str, body: Mapping[str, Any], *, sparse: bool = True, bid: str | None = None
    ) -> BatchItem:
        if "Id" not in body or "SyncToken" not in body:
            raise ValueError("an update needs the entity's Id and current SyncToken")
        return cls("update", validate_name(entity, "entity"), {**body, "sparse": sparse}, bid=bid)

    @classmethod
    def delete(cls, entity: str, qbo_id: str, sync_token: str, *, bid: str | None = None) -> BatchItem:
        body = {"Id": str(qbo_id), "SyncToken": str(sync_token)}
        return cls("delete", validate_name(entity, "entity"), body, bid=bid)

    @classmethod
    def query(cls, statement: str, *, bid: str | None = None) -> BatchItem:
        return cls("query", statement=statement, bid=bid)

    def to_request(self, bid: str) -> dict[str, Any]:
        if self.operation == "query":
            return {"bId": bid, "Query": self.statement}
        if self.operation not in ("create", "update", "delete") or not self.entity:
            raise ValueError(f"unsupported batch operation {self.operation!r}")
        request: dict[str, Any] = {"bId": bid, "operation": self.operation, self.entity: dict(self.body or {})}
        if self.options:
            request["optionsData"] = self.options
        return request


@dataclass(frozen=True)
class BatchResult:
    """The answer to one ``BatchItem``: an entity, query rows, or an error."""

    bid: str
    item: BatchItem
    entity_name: str | None = None
    entity: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    error: QboError | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> dict[str, Any]:
        """The entity (or ``{"rows": [...]}`` for a query); raises the item's error if it failed."""
        if self.error is not None:
            raise self.error
        if self.rows is not None:
            return {"rows": self.rows}
        return self.entity or {}


def assign_bids(items: Sequence[BatchItem]) -> list[str]:
    """Keep caller bIds (unique, ≤ 10 chars); number the rest ``b0``, ``b1``, ... avoiding clashes."""
    given = [item.bid for item in items if item.bid is not None]
    if len(given) != len(set(given)):
        raise ValueError("bIds must be unique within a batch")
    for bid in given:
        if not bid or len(bid) > MAX_BID_LENGTH:
            raise ValueError(f"a bId must be 1-{MAX_BID_LENGTH} characters: {bid!r}")
    used = set(given)
    result: list[str] = []
    counter = 0
    for item in items:
        if item.bid is not None:
            result.append(item.bid)
            continue
        while f"b{counter}" in used:
            counter += 1
        result.append(f"b{counter}")
        used.add(f"b{counter}")
    return result


def _query_rows(query_response: Mapping[str, Any]) -> list[dict[str, Any]]:
    for value in query_response.values():
        if isinstance(value, list):
            return value
    return []


def parse_batch_response(
    data: Mapping[str, Any],
    items: Sequence[BatchItem],
    bids: Sequence[str],
    *,
    status: int | None = None,
    intuit_tid: str | None = None,
    secrets: Iterable[str] = (),
) -> list[BatchResult]:
    """Match ``BatchItemResponse`` entries to ``items`` by bId (QBO does not keep the order)."""
    secrets = tuple(secrets)
    by_bid: dict[str, dict[str, Any]] = {}
    for entry in data.get("BatchItemResponse") or []:
        if isinstance(entry, dict) and "bId" in entry:
            by_bid[str(entry["bId"])] = entry
    results: list[BatchResult] = []
    for item, bid in zip(items, bids, strict=True):
        entry = by_bid.get(bid)
        error: QboError
        if entry is None:
            error = UnexpectedResponseError(
                f"the batch response has no answer for bId {bid}", status=status, intuit_tid=intuit_tid
            )
            results.append(BatchResult(bid, item, error=error))
            continue
        fault = parse_fault(entry)
        if fault is not None:
            error = error_from_fault(fault[0], fault[1], intuit_tid=intuit_tid, secrets=secrets)
            results.append(BatchResult(bid, item, error=error, raw=entry))
            continue
        if isinstance(entry.get("QueryResponse"), dict):
            rows = _query_rows(entry["QueryResponse"])
            results.append(BatchResult(bid, item, entity_name="QueryResponse", rows=rows, raw=entry))
            continue
        name = item.entity if item.entity and isinstance(entry.get(item.entity), dict) else None
        if name is None:
            name = next((k for k, v in entry.items() if k != "bId" and isinstance(v, dict)), None)
        if name is None:
            error = UnexpectedResponseError(
                f"the batch answer for bId {bid} holds no entity", status=status, intuit_tid=intuit_tid
            )
            results.append(BatchResult(bid, item, error=error, raw=entry))
            continue
        results.append(BatchResult(bid, item, entity_name=name, entity=entry[name], raw=entry))
    return results
