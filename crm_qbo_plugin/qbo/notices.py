"""Webhook bodies → change notices (pure; no I/O).

Intuit sends either the legacy ``{"eventNotifications": [...]}`` object (one realm per
notification) or a CloudEvents array (one event per change, realms mixed). Both become `Notice`s
keyed by realm, entity, id and a *change stamp* that is identical for a redelivery or a replay of
the same change and different for a different change:

- CloudEvents: the spec makes ``source`` + ``id`` unique per event, so the stamp is a hash of them
  (a retry or a replay resends the same bytes, hence the same id).
- Legacy: there is no event id; operation + ``lastUpdated`` (normalised to UTC) names the change.

A notice that cannot be used (bad shape, unsupported entity) carries a `problem`; the inbox keeps
it as a dead letter instead of refusing the delivery, because a non-200 answer would hold back
every later delivery for the app.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from crm_qbo_plugin.qbo.timestamps import parse_timestamp

# Entities the plugin applies inbound; notices for these known ones are expected but not applied.
APPLIED_ENTITIES = frozenset({"Customer", "Invoice", "Payment"})
IGNORED_ENTITIES = frozenset({"SalesReceipt", "Item"})
_CANONICAL = {name.lower(): name for name in APPLIED_ENTITIES | IGNORED_ENTITIES}
_VERBS = {
    "created": "Create", "updated": "Update", "deleted": "Delete", "merged": "Merge",
    "voided": "Void", "emailed": "Emailed",
}
_CLOUD_TYPE = re.compile(r"^qbo\.([a-z]+)\.([a-z]+)\.v\d+$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_REALM = re.compile(r"^[0-9]{1,32}$")
# Control characters (NUL among them, which PostgreSQL cannot store in text) are in no id or name
# Intuit sends: a notice carrying one is kept as a dead letter keyed by a hash, never stored raw.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
STAMP_LENGTH = 40


@dataclass(frozen=True)
class Notice:
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    change_stamp: str
    event_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # set: keep as a dead letter with this reason
    ignored: str | None = None  # set: a known entity the plugin does not apply (kept as skipped)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.realm_id, self.entity, self.entity_id, self.change_stamp)


def _digest(*parts: str, prefix: str) -> str:
    text = "\x1f".join(parts)
    return prefix + hashlib.sha256(text.encode("utf-8")).hexdigest()[: STAMP_LENGTH - len(prefix)]


def _bad(entry: Any, reason: str, realm: Any = None) -> Notice:
    """A dead letter for an entry that cannot be keyed normally: keyed by a hash of its JSON."""
    raw = json.dumps(entry, sort_keys=True, default=str)
    realm_text = str(realm) if isinstance(realm, str | int) and _REALM.match(str(realm)) else "unknown"
    return Notice(realm_text, "?", "?", "?", _digest(raw, prefix="bad:"), problem=reason)


def _classify(entity: str, label: str) -> tuple[str | None, str | None]:
    """Notice fields for an entity: nothing for applied ones, `ignored` for known ones the plugin
    does not apply (its own sales receipts and items), `problem` (a dead letter) for the rest."""
    if entity in APPLIED_ENTITIES:
        return None, None
    if entity in IGNORED_ENTITIES:
        return None, f"QBO {entity} changes are not synced to the CRM"
    return f"unknown QBO entity type {label!r}", None


def _legacy(payload: dict[str, Any]) -> list[Notice]:
    notices: list[Notice] = []
    events = payload.get("eventNotifications")
    if not isinstance(events, list):
        return [_bad(payload, "legacy body without an eventNotifications list")]
    for event in events:
        realm = event.get("realmId") if isinstance(event, dict) else None
        change = event.get("dataChangeEvent") if isinstance(event, dict) else None
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(realm, str | int) or not _REALM.match(str(realm)) or not isinstance(entities, list):
            notices.append(_bad(event, "notification without a valid realmId and entity list", realm))
            continue
        for entry in entities:
            notices.append(_legacy_entity(str(realm), entry))
    return notices


def _legacy_entity(realm: str, entry: Any) -> Notice:
    if not isinstance(entry, dict):
        return _bad(entry, "entity entry is not an object", realm)
    name, entity_id, operation = entry.get("name"), entry.get("id"), entry.get("operation")
    stamp_time = entry.get("lastUpdated")
    if not (isinstance(name, str) and isinstance(entity_id, str | int) and _ID.match(str(entity_id))
            and isinstance(operation, str) and operation.isalpha() and len(operation) <= 16):
        return _bad(entry, "entity entry without a valid name, id and operation", realm)
    if _CONTROL.search(name):
        return _bad(entry, "entity name contains control characters", realm)
    try:
        when = parse_timestamp(stamp_time) if isinstance(stamp_time, str) else None
    except ValueError:
        when = None
    if when is None:
        return _bad(entry, "entity entry without a valid lastUpdated", realm)
    entity = _CANONICAL.get(name.lower(), name[:32])
    stamp = f"{operation}@{when.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
    deleted = entry.get("deletedId")
    if deleted not in (None, "") and not (isinstance(deleted, str | int) and _ID.match(str(deleted))):
        return _bad(entry, "entity entry with an invalid deletedId", realm)
    data = {"deletedid": str(deleted)} if deleted not in (None, "") else {}
    problem, ignored = _classify(entity, name)
    return Notice(realm, entity, str(entity_id), operation, stamp, data=data, problem=problem, ignored=ignored)


def _cloud_event(event: Any) -> Notice:
    if not isinstance(event, dict):
        return _bad(event, "CloudEvent is not an object")
    realm, entity_id = event.get("intuitaccountid"), event.get("intuitentityid")
    event_id, source, kind = event.get("id"), event.get("source"), event.get("type")
    match = _CLOUD_TYPE.match(kind) if isinstance(kind, str) else None
    if not (isinstance(realm, str | int) and _REALM.match(str(realm))):
        return _bad(event, "CloudEvent without a valid intuitaccountid", realm)
    if not (match and isinstance(entity_id, str | int) and _ID.match(str(entity_id))
            and isinstance(event_id, str) and event_id and len(event_id) <= 120):
        return _bad(event, "CloudEvent without a valid type, id or intuitentityid", realm)
    if _CONTROL.search(event_id):
        return _bad(event, "CloudEvent id contains control characters", realm)
    noun, verb = match.groups()
    entity = _CANONICAL.get(noun, noun[:32])
    operation = _VERBS.get(verb, verb.capitalize()[:16])
    raw_data = event.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    deleted = data.get("deletedid")
    if deleted not in (None, "") and not (isinstance(deleted, str | int) and _ID.match(str(deleted))):
        return _bad(event, "CloudEvent with an invalid deletedid", realm)
    keep = {"deletedid": str(deleted)} if deleted not in (None, "") else {}
    stamp = _digest(str(source or ""), event_id, prefix="ce:")
    problem, ignored = _classify(entity, str(kind))
    return Notice(str(realm), entity, str(entity_id), operation, stamp, event_id=event_id, data=keep,
                  problem=problem, ignored=ignored)


def parse_webhook(payload: Any) -> list[Notice]:
    """Every notice in a parsed webhook body (legacy object or CloudEvents array), in body order.

    Duplicates inside one body are kept (the inbox counts them as extra deliveries).
    """
    if isinstance(payload, list):
        return [_cloud_event(event) for event in payload]
    if isinstance(payload, dict):
        return _legacy(payload)
    return [_bad(payload, "webhook body is neither a legacy object nor a CloudEvents array")]


def unparseable(raw: bytes) -> Notice:
    """A dead letter for an authentic body that is not JSON, keyed by its hash."""
    return Notice("unknown", "?", "?", "?", "bad:" + hashlib.sha256(raw).hexdigest()[:36],
                  problem="webhook body is not JSON")


def with_problem(notice: Notice, problem: str) -> Notice:
    return replace(notice, problem=problem)
