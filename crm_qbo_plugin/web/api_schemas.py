"""Marshmallow schemas of the plugin's JSON API: they validate what the card sends and document
(through apispec) what it gets back."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from crm_qbo_plugin.events import has_control_characters
from crm_qbo_plugin.store.card_settings import CardSettingsSchema

KINDS = ("contact", "invoice", "sales_receipt", "payment", "item")
# not_synced: changed while QuickBooks was disconnected (Retry sends it); crm_only: an imported,
# QuickBooks-owned invoice edited or deleted in the CRM (the change stays local).
RECORD_STATUSES = ("pending", "synced", "failed", "conflict", "ignored", "deleted", "not_synced", "crm_only")


class ProblemSchema(Schema):
    error = fields.String(required=True)
    field_errors = fields.Dict(keys=fields.String(), values=fields.Raw(), data_key="fields")


class SetupSchema(Schema):
    revenue_account_chosen = fields.Boolean()
    taxes_confirmed = fields.Boolean()
    currency_ok = fields.Boolean(allow_none=True)
    currency_message = fields.String(allow_none=True)
    taxes_mapped = fields.Boolean()
    tax_mapping_needed = fields.Boolean()
    complete = fields.Boolean()


class CrmTaxSchema(Schema):
    id = fields.String()
    name = fields.String()
    rate_percent = fields.String(metadata={"description": "a decimal percentage, e.g. 8.875"})


class StatusSchema(Schema):
    status = fields.String(metadata={"description": "connected | needs_reconnect | disconnected"})
    provider = fields.String(allow_none=True, metadata={"description": "quickbooks | xero; null before connecting"})
    books = fields.String(metadata={"description": "the accounting system's name in sentences: QuickBooks or Xero"})
    company_name = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    home_currency = fields.String(allow_none=True)
    multicurrency = fields.Boolean()
    tax_model = fields.String(allow_none=True)
    connected_at = fields.AwareDateTime(allow_none=True)
    last_webhook_at = fields.AwareDateTime(allow_none=True)
    refresh_expires_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    day_budget_warning = fields.String(allow_none=True, metadata={
        "description": "Xero only: what is left of the organisation's daily budget of calls, once it runs low"})
    setup = fields.Nested(SetupSchema)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "records by status"})
    crm_currency = fields.String(allow_none=True)
    last_synced_at = fields.AwareDateTime(allow_none=True, metadata={
        "description": "when a change was last sent to the books or a sync run last finished"})
    needs_attention = fields.Integer(metadata={"description": "records failed, in conflict or not synced"})
    crm_taxes = fields.List(fields.Nested(CrmTaxSchema))


class SettingsSchema(CardSettingsSchema):
    """Per-location settings. Unknown keys are refused, so a typo never silently does nothing; a bad
    value is refused naming the field, and nothing of the request is stored."""

    class Meta:
        unknown = RAISE
        dump_only = ("review_request_since",)


class AccountSchema(Schema):
    id = fields.String()
    name = fields.String()
    account_type = fields.String()


class TaxCodeSchema(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)


class SyncRunSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    counts = fields.Dict(keys=fields.String(), values=fields.Raw())
    errors = fields.List(fields.Raw())
    started_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)


class RecordLabelSchema(Schema):
    title = fields.String(metadata={"description": "the record as the CRM's users know it, e.g. Invoice INV-1007"})
    subtitle = fields.String(metadata={"description": "e.g. the contact's name"})
    amount = fields.String(metadata={"description": "e.g. 35.00 USD; empty when the record has none"})
    url = fields.String(allow_none=True, metadata={"description": "the record's page in the CRM"})


class RecordSchema(Schema):
    kind = fields.String()
    crm_id = fields.String()
    qbo_id = fields.String(allow_none=True)
    origin = fields.String()
    status = fields.String(metadata={"description": " | ".join(RECORD_STATUSES)})
    last_error = fields.String(allow_none=True, metadata={"description": "why the record has this status"})
    detail = fields.Dict(keys=fields.String(), values=fields.Raw())
    updated_at = fields.AwareDateTime()
    label = fields.Nested(RecordLabelSchema)
    qbo_title = fields.String(allow_none=True, metadata={"description": "e.g. QuickBooks invoice 1011, Xero invoice INV-0042"})
    qbo_url = fields.String(allow_none=True, metadata={"description": "the record's page in QuickBooks Online or Xero"})
    actions = fields.List(fields.String(validate=validate.OneOf(("retry", "ignore"))), metadata={
        "description": "what makes sense for the record now (nothing for a synced one)"})
    advice = fields.String(allow_none=True, metadata={"description": "what to do about a failed record"})


def _printable(value: str) -> None:
    if has_control_characters(value):
        raise ValidationError("must not contain control characters")


class RecordQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf(RECORD_STATUSES))
    kind = fields.String(validate=validate.OneOf(KINDS))
    q = fields.String(validate=[validate.Length(min=1, max=100), _printable], metadata={
        "description": "search: a CRM number, name or e-mail, or a CRM, QuickBooks or Xero id"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))


class RunQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))


class HistoryQuerySchema(RunQuerySchema):
    pass


class HistoryFailureSchema(Schema):
    kind = fields.String()
    crm_id = fields.String()
    title = fields.String()
    url = fields.String(allow_none=True)
    error = fields.String()
    advice = fields.String(metadata={"description": "what to do about it"})


class HistorySchema(Schema):
    at = fields.AwareDateTime(metadata={"description": "the latest moment of this stretch of sync work"})
    summary = fields.String(metadata={"description": "e.g. Sent 2 invoices and 1 payment to Xero · Received 1 change"})
    sent = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "changes sent per kind"})
    received = fields.Integer()
    imported = fields.Integer()
    failures = fields.List(fields.Nested(HistoryFailureSchema))
    errors = fields.List(fields.String(), metadata={"description": "problems reading changes from the books"})
