"""Items by code: a CRM line whose SKU is a Xero item's Code (or, without a SKU, whose name is an
item's Name) is sent with that ItemCode, so Xero reports the sale against its item. Xero's items
are never created or changed from the CRM (a line without one is sent with its description and
amount on the revenue account).

The organisation's items are read at most once per ten minutes and kept in Redis: a push must not
spend one of Xero's 60 calls a minute on them, and an item added in Xero is used from the next read.
"""

from __future__ import annotations

import json
import logging

import redis

from crm_qbo_plugin.mapping.names import item_key
from crm_qbo_plugin.outbound.xero_context import XeroPush

log = logging.getLogger(__name__)

ITEMS_SECONDS = 600


def item_codes(push: XeroPush) -> dict[str, str]:
    """The organisation's item codes by what a CRM line is known by (`names.item_key`)."""
    key = f"crm_qbo:xero:items:{push.realm}"
    try:
        cached = push.state.redis.get(key)
    except redis.RedisError:
        cached = None
    if cached is not None:
        return dict(json.loads(cached))
    codes: dict[str, str] = {}
    for item in push.xero.items():
        code, name = str(item.get("Code") or ""), str(item.get("Name") or "")
        if not code:
            continue
        codes[item_key(None, code)] = code  # a line's SKU is the item's Code
        if name:
            codes.setdefault(item_key(name, None), code)  # a line without a SKU, by the item's Name
    try:
        push.state.redis.set(key, json.dumps(codes), ex=ITEMS_SECONDS)
    except redis.RedisError:
        log.warning("outbound.xero_items_not_cached next=read_again")
    return codes
