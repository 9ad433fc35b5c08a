"""A location's card settings, typed: parsed from the connection's stored JSON, written back in one
canonical JSON form (dates and times as ISO strings).

plugin.yaml declares each of them with its default (a test keeps the two in step), and every module
reads them through `card_settings(conn)` rather than picking keys out of the JSON. What an older
version or a hand edit left in the JSON never breaks a reader: a value that does not parse reads as
its default, with a warning naming the setting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from crm_qbo_plugin.mapping.field_map import problems
from crm_qbo_plugin.store.tables import Connection

log = logging.getLogger(__name__)


def _field_mapping_valid(value: Mapping[str, str]) -> None:
    found = problems(value)
    if found:
        raise ValidationError("; ".join(f"{field}: {why}" for field, why in found.items()))


class CardSettingsSchema(Schema):
    """Each card setting's type and limits: what PATCH /api/settings accepts and how it is stored."""

    import_invoices = fields.Boolean()
    review_request = fields.Boolean()
    auto_sync = fields.Boolean()
    revenue_account_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=32))
    payment_account_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=32),
                                       metadata={"description": "Xero: the code of the bank account payments go to"})
    taxes_confirmed = fields.Boolean()
    tax_mapping = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)),
                              values=fields.String(validate=validate.Length(min=1, max=32)))
    sync_from = fields.Date(allow_none=True)
    export_on_send = fields.Boolean(metadata={"description": "off: invoices reach QuickBooks only when exported "
                                                             "one by one (Send to QuickBooks)"})
    import_customers = fields.Boolean(metadata={"description": "import QuickBooks customers when connecting"})
    field_mapping = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)),
                                values=fields.String(validate=validate.Length(min=1, max=32)),
                                validate=_field_mapping_valid,
                                metadata={"description": "CRM field -> QuickBooks field: invoice.number -> DocNumber | "
                                                         "PrivateNote | CustomerMemo | none; contact.id -> none | Notes"})
    # Set by the plugin when review_request is switched on; never by a request.
    review_request_since = fields.AwareDateTime(allow_none=True, default_timezone=UTC)


@dataclass(frozen=True)
class CardSettings:
    """The settings the code reads. Defaults are plugin.yaml's."""

    import_invoices: bool = False  # only read when connecting
    review_request: bool = False
    auto_sync: bool = True  # off: webhooks and "Sync now" only, no scheduled polls
    revenue_account_id: str | None = None  # QuickBooks: an Account Id; Xero: an AccountCode
    payment_account_id: str | None = None  # Xero: the AccountCode of the bank account payments go to
    taxes_confirmed: bool = False
    tax_mapping: Mapping[str, str] = field(default_factory=dict)  # CRM tax id -> QBO tax code id
    sync_from: date | None = None  # records dated before it are never pushed
    review_request_since: datetime | None = None  # None: on from the start
    export_on_send: bool = True  # off: an invoice reaches QuickBooks only by "Send to QuickBooks"
    import_customers: bool = True  # only read when connecting
    field_mapping: Mapping[str, str] = field(default_factory=dict)  # mapping/field_map.py; {} = defaults

    @classmethod
    def from_stored(cls, raw: Any) -> CardSettings:
        """Parse stored JSON; a key that is missing or does not parse takes its default."""
        if not isinstance(raw, Mapping):
            return cls()
        values: dict[str, Any] = {}
        for name, spec in _SCHEMA.fields.items():
            if name not in raw:
                continue
            try:
                values[name] = spec.deserialize(raw[name], name, raw)
            except ValidationError as exc:
                log.warning("card_settings.invalid name=%s problem=%r using=default", name, "; ".join(_messages(exc)))
        return cls(**values)


_SCHEMA = CardSettingsSchema()


def card_settings(conn: Connection | None) -> CardSettings:
    """The connection's card settings (the defaults when there is no connection)."""
    return CardSettings.from_stored(conn.settings if conn is not None else None)


def stored_with(raw: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The stored JSON with `changes` (typed values, e.g. a `date`) written in canonical form.

    Keys not in `changes` are kept exactly as they were."""
    unknown = sorted(set(changes) - set(_SCHEMA.fields))
    if unknown:
        raise ValueError(f"not card settings: {', '.join(unknown)}")
    base = dict(raw) if isinstance(raw, Mapping) else {}
    return {**base, **_SCHEMA.dump(changes)}


def _messages(exc: ValidationError) -> list[str]:
    messages = exc.messages
    if isinstance(messages, dict):
        return [str(m) for value in messages.values() for m in (value if isinstance(value, list) else [value])]
    return [str(m) for m in messages]
