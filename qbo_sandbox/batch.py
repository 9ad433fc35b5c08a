"""``POST /batch``: up to 30 independent operations and queries, one Fault per failed item.

The whole batch answers HTTP 200 even when items fail; a malformed batch (too many items,
missing or repeated ``bId``) is refused as a whole with HTTP 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qbo_sandbox import errors
from qbo_sandbox.operations import ENTITY_PATHS, Operations
from qbo_sandbox.query import QueryError

MAX_ITEMS = 30
ENTITY_NAMES = frozenset(ENTITY_PATHS.values())


ItemFault = Callable[[str], dict[str, Any] | None]


def run_batch(ops: Operations, body: Any, fault_for: ItemFault | None = None) -> list[dict[str, Any]]:
    """Execute the items in order; returns the ``BatchItemResponse`` list. `fault_for(entity)`
    gives an injected Fault for an item, which then is not executed."""
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise errors.required_missing("BatchItemRequest")
    if len(items) > MAX_ITEMS:
        raise errors.QBOError(
            4000 + 3,
            "Batch request too large",
            f"The maximum number of BatchItemRequests in a batch is {MAX_ITEMS}. "
            f"Supplied: {len(items)}",
            element="BatchItemRequest",
        )
    seen: set[str] = set()
    for item in items:
        bid = item.get("bId") if isinstance(item, dict) else None
        if bid in (None, ""):
            raise errors.required_missing("bId")
        if str(bid) in seen:
            raise errors.QBOError(
                2010, "Request has invalid or unsupported property",
                f"Duplicate bId {bid}: every BatchItemRequest needs a unique bId", element="bId",
            )
        seen.add(str(bid))
    return [_run_item(ops, item, fault_for) for item in items]


def _run_item(ops: Operations, item: dict[str, Any], fault_for: ItemFault | None = None) -> dict[str, Any]:
    bid = str(item["bId"])
    try:
        if "Query" in item:
            return {"bId": bid, "QueryResponse": ops.query(str(item["Query"]))}
        names = [key for key in item if key in ENTITY_NAMES]
        if len(names) != 1:
            raise errors.bad_request_body("Each BatchItemRequest needs exactly one entity or Query")
        entity = names[0]
        injected = fault_for(entity) if fault_for is not None else None
        if injected is not None:
            return {"bId": bid, "Fault": injected}
        operation = str(item.get("operation") or "")
        if operation not in ("create", "update", "delete"):
            if not operation:
                raise errors.required_missing("operation")
            raise errors.invalid_enum("operation", operation)
        include = ("void",) if str(item.get("optionsData") or "").lower() == "void" else ()
        payload = item[entity]
        if operation == "create" and isinstance(payload, dict):
            payload = {k: v for k, v in payload.items() if k != "Id"}
        result = ops.write(entity, payload, operation, include)
        return {"bId": bid, entity: result}
    except QueryError as exc:
        return {"bId": bid, "Fault": errors.QBOError(exc.code, exc.message, exc.detail).fault()}
    except errors.QBOError as exc:
        return {"bId": bid, "Fault": exc.fault()}
