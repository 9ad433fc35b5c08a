"""CRM line items → QBO Items: found by SKU or name, created as Service items when missing, and
cached as links (kind "item", crm_id = the SKU or normalized name key)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm_qbo_plugin.host import LineItem
from crm_qbo_plugin.mapping.invoice import line_keys
from crm_qbo_plugin.mapping.names import (
    GENERIC_ITEM_NAME,
    clean_text,
    cut,
    disambiguated_names,
    item_key,
    item_name,
    stable_hash,
)
from crm_qbo_plugin.outbound.context import Push
from crm_qbo_plugin.outbound.failures import PushConflict, PushFailed
from crm_qbo_plugin.qbo import DuplicateNameError, build_select, eq
from crm_qbo_plugin.store.links import (
    DELETED,
    ITEM,
    PENDING,
    link_by_qbo_id,
    links_for,
    record_write,
    set_status,
)

MAX_SKU = 100


def revenue_account(push: Push) -> str:
    account = push.settings.revenue_account_id
    if not account:
        raise PushFailed("choose the revenue account on the QuickBooks card")
    return str(account)


def linked_item_ids(push: Push, keys: Sequence[str]) -> dict[str, str]:
    """The item ids already linked for `keys` (no QBO call)."""
    links = links_for(push.state, push.tenant, ITEM, list(keys))
    return {key: link.qbo_id for key, link in links.items() if link.qbo_id and link.status != DELETED}


def ensure_items(push: Push, lines: Sequence[LineItem]) -> dict[str, str]:
    """{item key: QBO Item id} for every line (the generic item for an empty list)."""
    keys = line_keys(lines)
    ids = linked_item_ids(push, keys)
    by_key: dict[str, LineItem | None] = {}
    for line in lines:
        by_key.setdefault(item_key(line.name, line.sku), line)
    for key in keys:
        if key not in ids:
            ids[key] = _ensure_item(push, key, by_key.get(key))
    return ids


def _ensure_item(push: Push, key: str, line: LineItem | None) -> str:
    with push.lock(ITEM, key):
        known = linked_item_ids(push, [key])
        if key in known:
            return known[key]
        generation = 0
        links = links_for(push.state, push.tenant, ITEM, [key])
        if key in links and links[key].status == DELETED:
            generation = set_status(push.state, push.tenant, ITEM, key, PENDING, clear_qbo=True,
                                    bump_generation=True).generation
        name = item_name(line.name if line else GENERIC_ITEM_NAME)
        sku = cut(clean_text(line.sku), MAX_SKU) if line and line.sku else ""
        found = _find(push, name, sku)
        if found is not None:
            # Another key may already own this item (a SKU'd "Repairs", then a line "Repairs"
            # without SKU): use it, but a QBO item is linked once.
            if link_by_qbo_id(push.state, push.tenant, ITEM, str(found["Id"])) is None:
                record_write(push.state, push.tenant, push.realm, ITEM, key, "Item", found)
            return str(found["Id"])
        account = revenue_account(push)
        candidates = disambiguated_names(name, sku or None, key)
        for index, candidate in enumerate(candidates):
            body: dict[str, Any] = {"Name": candidate, "Type": "Service",
                                    "IncomeAccountRef": {"value": account}}
            if sku:
                body["Sku"] = sku
            try:
                answer = push.qbo.create("Item", body, push.rid(f"it{key_tag(key)}{index}", generation))
            except DuplicateNameError:
                continue
            record_write(push.state, push.tenant, push.realm, ITEM, key, "Item", answer)
            return str(answer["Id"])
        raise PushConflict(f"QuickBooks already has products named \"{name}\"; rename the product, then retry")


def key_tag(key: str) -> str:
    return stable_hash(key, length=6)


def _find(push: Push, name: str, sku: str) -> dict[str, Any] | None:
    """An active Item with this SKU, or (without a SKU) this exact name."""
    if sku:
        rows = push.qbo.query(build_select("Item", [eq("Sku", sku)]))
        rows = [r for r in rows if str(r.get("Sku", "")).casefold() == sku.casefold()]
    else:
        rows = push.qbo.query(build_select("Item", [eq("Name", name)]))
        rows = [r for r in rows if str(r.get("Name", "")).casefold() == name.casefold()]
    return min(rows, key=lambda r: int(r["Id"]) if str(r["Id"]).isdigit() else 0) if rows else None
