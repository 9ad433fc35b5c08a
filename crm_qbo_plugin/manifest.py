"""Load and validate plugin.yaml, the manifest a CRM's plugin host reads.

An invalid manifest fails start-up with the offending field named (e.g. ``settings.2.type``), so a
typo in a release is caught by the first test run instead of by a customer's plugin host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from crm_qbo_plugin.events import EventType

MANIFEST_PATH = Path(__file__).with_name("plugin.yaml")


def _iso(parse: Callable[[str], object]) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        try:
            parse(value)
        except (TypeError, ValueError):
            return False
        return isinstance(value, str)
    return ok


# Each setting type, and what a default of that type must look like (JSON as the store keeps it).
SETTING_TYPES: dict[str, Callable[[Any], bool]] = {
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "date": _iso(date.fromisoformat),  # YYYY-MM-DD
    "datetime": _iso(datetime.fromisoformat),  # ISO 8601
    "mapping": lambda v: isinstance(v, dict) and all(isinstance(x, str) for item in v.items() for x in item),
}
_ID = validate.Regexp(r"^[a-z][a-z0-9_-]*$", error="must be lowercase letters, digits, '-' or '_'")


class _TriggerSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=_ID)
    name = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String(load_default="")


class _SettingSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=_ID)
    type = fields.String(required=True, validate=validate.OneOf(sorted(SETTING_TYPES)))
    default = fields.Raw(required=True, allow_none=True)
    label = fields.String(required=True, validate=validate.Length(min=1))
    help = fields.String(load_default="")
    read_only = fields.Boolean(load_default=False)  # set by the plugin, never by the card

    @validates_schema
    def _default_matches_type(self, data: dict[str, Any], **_: Any) -> None:
        default, kind = data.get("default"), data.get("type")
        if default is None or kind not in SETTING_TYPES:
            return
        if not SETTING_TYPES[kind](default):
            raise ValidationError(f"must be a {kind}", field_name="default")


class _ManifestSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=_ID)
    name = fields.String(required=True, validate=validate.Length(min=1))
    version = fields.String(required=True, validate=validate.Regexp(r"^\d+\.\d+\.\d+([.-]?\w+)?$"))
    description = fields.String(load_default="")
    entry_point = fields.String(required=True, validate=validate.Regexp(r"^[\w.]+:\w+$"))
    mount_path = fields.String(required=True, validate=validate.Regexp(r"^/[\w/-]*[\w-]$"))
    consumes = fields.List(
        fields.String(validate=validate.OneOf([e.value for e in EventType])), required=True
    )
    provides_triggers = fields.List(fields.Nested(_TriggerSchema), required=True)
    settings = fields.List(fields.Nested(_SettingSchema), required=True)
    secrets = fields.List(fields.String(validate=validate.Length(min=1)), required=True)

    @validates_schema
    def _unique_keys(self, data: dict[str, Any], **_: Any) -> None:
        for list_name, key in (("settings", "key"), ("provides_triggers", "id")):
            seen: set[str] = set()
            for index, item in enumerate(data.get(list_name, [])):
                if item[key] in seen:
                    raise ValidationError({str(index): {key: [f"duplicate {key} {item[key]!r}"]}}, list_name)
                seen.add(item[key])


@dataclass(frozen=True)
class Trigger:
    id: str
    name: str
    description: str


@dataclass(frozen=True)
class SettingSpec:
    key: str
    type: str
    default: Any
    label: str
    help: str
    read_only: bool = False


@dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    version: str
    description: str
    entry_point: str
    mount_path: str
    consumes: tuple[str, ...]
    triggers: tuple[Trigger, ...]
    settings: tuple[SettingSpec, ...]
    secrets: tuple[str, ...]

    def defaults(self) -> dict[str, Any]:
        """Per-location setting defaults, keyed by setting key."""
        return {spec.key: spec.default for spec in self.settings}

    def trigger_ids(self) -> frozenset[str]:
        return frozenset(t.id for t in self.triggers)


class ManifestError(RuntimeError):
    """plugin.yaml is invalid; the message names each bad field by its path."""


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: the manifest must be a mapping")
    try:
        data = _ManifestSchema().load(raw)
    except ValidationError as exc:
        problems = "\n  ".join(f"{field}: {msg}" for field, msg in _field_paths(exc.messages))
        raise ManifestError(f"{path} is invalid:\n  {problems}") from None
    return Manifest(
        id=data["id"],
        name=data["name"],
        version=data["version"],
        description=data["description"],
        entry_point=data["entry_point"],
        mount_path=data["mount_path"],
        consumes=tuple(data["consumes"]),
        triggers=tuple(Trigger(**t) for t in data["provides_triggers"]),
        settings=tuple(SettingSpec(**s) for s in data["settings"]),
        secrets=tuple(data["secrets"]),
    )


def _field_paths(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten marshmallow's nested errors into ('settings.2.type', 'message') pairs."""
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            out.extend(_field_paths(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix, "; ".join(messages))]
    return [(prefix, str(messages))]
