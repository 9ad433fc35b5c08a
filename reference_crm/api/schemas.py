"""marshmallow schemas for the JSON API; the HTML forms load through the same ones.

Money is a JSON string ("19.99") or a number; numbers are read through their shortest decimal
form, so 19.99 is 19.99 and never a binary fraction. Answers carry money as strings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from crm_qbo_plugin import PaymentSource

MAX_AMOUNT = Decimal("1000000000")
CURRENCY = validate.Regexp(r"^[A-Za-z]{3}$", error="must be a 3-letter ISO 4217 code, e.g. USD")


class Amount(fields.Decimal):
    """A Decimal with at most `places` decimal places (more is refused, never rounded)."""

    def __init__(self, places: int, *, minimum: Decimal = Decimal("0"), exclusive_minimum: bool = False,
                 **kwargs: Any) -> None:
        self.max_places = places
        self.minimum = minimum
        self.exclusive_minimum = exclusive_minimum
        super().__init__(as_string=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool):
            raise ValidationError("must be a decimal number")
        if isinstance(value, float):
            value = repr(value)
        number: Decimal = super()._deserialize(value, attr, data, **kwargs)
        if not number.is_finite():
            raise ValidationError("must be a finite number")
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -self.max_places:
            raise ValidationError(f"must have at most {self.max_places} decimal places")
        if number < self.minimum or (self.exclusive_minimum and number == self.minimum):
            raise ValidationError(f"must be {'greater than' if self.exclusive_minimum else 'at least'} {self.minimum}")
        if number >= MAX_AMOUNT:
            raise ValidationError(f"must be below {MAX_AMOUNT}")
        return number


class DecimalText(fields.Decimal):
    """An exact decimal in answers, sent as a JSON string (so the document says string, not number)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(as_string=True, metadata={"type": "string", "format": "decimal", "example": "12.50"}, **kwargs)


class Input(Schema):
    """A request body: text may not hold NUL characters (PostgreSQL cannot store them)."""

    @pre_load
    def _no_nul(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            bad = sorted(k for k, v in data.items() if isinstance(v, str) and "\x00" in v)
            if bad:
                raise ValidationError({k: ["must not contain NUL characters"] for k in bad})
        return data


def _text(maximum: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=maximum), **kwargs)


# -- locations and tax rates ----------------------------------------------------------------------
class TaxRateIn(Input):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    rate_percent = Amount(4, required=True, validate=validate.Range(max=100),
                         metadata={"maximum": 100})  # a number in the OpenAPI document, not "100"


class TaxRateOut(Schema):
    id = fields.String()
    name = fields.String()
    rate_percent = DecimalText()


class UserIn(Input):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = _text(200, load_default="")
    password = fields.String(load_default=None, validate=validate.Length(min=10, max=200),
                             metadata={"description": "Leave out to have one generated (returned once)."})


class LocationIn(Input):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    currency = fields.String(load_default="USD", validate=CURRENCY)
    user = fields.Nested(UserIn, required=True)
    tax_rates = fields.List(fields.Nested(TaxRateIn), load_default=list, validate=validate.Length(max=50))


class LoginOut(Schema):
    email = fields.String()
    password = fields.String(allow_none=True, metadata={"description": "Only when it was generated."})


class LocationOut(Schema):
    id = fields.String()
    name = fields.String()
    currency = fields.String()
    api_key = fields.String(metadata={"description": "Shown once; send it as `Authorization: Bearer <key>`."})
    login = fields.Nested(LoginOut)
    tax_rates = fields.List(fields.Nested(TaxRateOut))


class LocationInfoOut(Schema):
    id = fields.String()
    name = fields.String()
    currency = fields.String()


# -- contacts -------------------------------------------------------------------------------------
class ContactIn(Input):
    first_name = _text(100, load_default="")
    last_name = _text(100, load_default="")
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))
    phone = fields.String(load_default="", validate=validate.Regexp(
        r"^[0-9+()./ \-]{0,40}$", error="may contain digits, spaces and + ( ) . / - (at most 40)"))
    company = _text(200, load_default="")

    @validates_schema
    def _named(self, data: dict[str, Any], partial: Any = None, **_: Any) -> None:
        if partial:
            return
        named = [(data.get(name) or "").strip() for name in ("first_name", "last_name", "company", "email")]
        if not any(named):
            raise ValidationError("give a name, a company or an e-mail", field_name="first_name")


class ContactPatch(ContactIn):
    """ContactIn for PATCH (loaded with partial=True: only the fields given change)."""


class ContactOut(Schema):
    id = fields.String()
    first_name = fields.String()
    last_name = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String()
    company = fields.String()
    origin = fields.String()
    active = fields.Boolean(metadata={"description": "False while the customer is inactive in QuickBooks "
                                                     "(QuickBooks' delete); set only by the QuickBooks plugin."})
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


# -- invoices -------------------------------------------------------------------------------------
class LineIn(Input):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = _text(4000, load_default="")
    sku = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    quantity = Amount(4, required=True, minimum=Decimal("0"), exclusive_minimum=True)
    unit_price = Amount(3, required=True)
    discount = Amount(2, load_default=Decimal("0"), metadata={"description": "An amount taken off this line."})
    tax_ids = fields.List(fields.String(validate=validate.Length(min=1, max=40)), load_default=list,
                          validate=validate.Length(max=5))


class InvoiceIn(Input):
    contact_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    issue_date = fields.Date(load_default=None)
    due_date = fields.Date(load_default=None, allow_none=True)
    currency = fields.String(load_default=None, validate=CURRENCY)
    billing_email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))
    lines = fields.List(fields.Nested(LineIn), required=True, validate=validate.Length(min=1, max=200))


class InvoicePatch(InvoiceIn):
    """InvoiceIn for PATCH (loaded with partial=True); lines, when given, replace all lines."""

    number = fields.String(validate=validate.Regexp(r"^\s*\S.{0,39}$", error="give 1 to 40 characters"), metadata={
        "description": "Renumber the invoice (new invoices are numbered by the location's sequence); "
                       "a number another invoice of the location uses is refused."})


class LineOut(Schema):
    name = fields.String()
    description = fields.String()
    sku = fields.String(allow_none=True)
    quantity = DecimalText()
    unit_price = DecimalText()
    discount = DecimalText()
    amount = DecimalText()
    tax_ids = fields.List(fields.String())


class InvoiceTaxOut(Schema):
    id = fields.String()
    name = fields.String()
    rate_percent = fields.String()


class InvoiceOut(Schema):
    id = fields.String()
    number = fields.String(allow_none=True)
    contact_id = fields.String()
    status = fields.String()
    currency = fields.String()
    issue_date = fields.Date()
    due_date = fields.Date(allow_none=True)
    billing_email = fields.String(allow_none=True)
    subtotal = DecimalText()
    discount_total = DecimalText()
    tax_total = DecimalText()
    total = DecimalText()
    amount_paid = DecimalText()
    balance = DecimalText()
    taxes = fields.List(fields.Nested(InvoiceTaxOut))
    lines = fields.List(fields.Nested(LineOut))
    origin = fields.String()
    version = fields.Integer()
    sent_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


# -- payments -------------------------------------------------------------------------------------
class PaymentLineIn(Input):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    sku = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    quantity = Amount(4, required=True, minimum=Decimal("0"), exclusive_minimum=True)
    unit_price = Amount(3, required=True)


class PaymentIn(Input):
    source = fields.String(required=True, validate=validate.OneOf([s.value for s in PaymentSource]))
    amount = Amount(2, required=True, minimum=Decimal("0"), exclusive_minimum=True)
    currency = fields.String(load_default=None, validate=CURRENCY)
    contact_id = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
    invoice_id = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
    paid_at = fields.AwareDateTime(load_default=None)
    reference = _text(200, load_default="")
    lines = fields.List(fields.Nested(PaymentLineIn), load_default=list, validate=validate.Length(max=100))


class PaymentLineOut(Schema):
    name = fields.String()
    sku = fields.String(allow_none=True)
    quantity = fields.String()
    unit_price = fields.String()


class PaymentOut(Schema):
    id = fields.String()
    contact_id = fields.String()
    source = fields.String()
    amount = DecimalText()
    currency = fields.String()
    paid_at = fields.AwareDateTime()
    invoice_id = fields.String(allow_none=True)
    reference = fields.String()
    lines = fields.List(fields.Nested(PaymentLineOut))
    origin = fields.String()
    created_at = fields.AwareDateTime()


# -- automation -----------------------------------------------------------------------------------
class AutomationOut(Schema):
    id = fields.Integer()
    trigger = fields.String()
    contact_id = fields.String()
    idempotency_key = fields.String()
    payload = fields.Dict()
    received_at = fields.AwareDateTime()


class MessageOut(Schema):
    id = fields.Integer()
    contact_id = fields.String()
    to_address = fields.String()
    subject = fields.String()
    body = fields.String()
    automation_id = fields.Integer(allow_none=True)
    created_at = fields.AwareDateTime()
