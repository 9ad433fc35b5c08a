"""The JSON API. Every route but POST /api/locations needs a location's key
(``Authorization: Bearer <key>``), and every query is filtered by that location: another
location's ids answer 404, exactly as ids that do not exist."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, g, request
from flask.views import MethodView
from flask_smorest import Api, Blueprint, abort
from werkzeug.exceptions import HTTPException

from reference_crm import automation, contacts, invoices, locations, payments
from reference_crm.api import schemas
from reference_crm.models import InvoiceRow, Location
from reference_crm.state import crm_state
from reference_crm.web.request import db

CONFIG_PREFIX = "REFERENCE_CRM_"
SECURITY: list[dict[str, list[str]]] = [{"locationKey": []}]


class CrmApi(Api):
    """flask-smorest's Api, answering errors as JSON only under /api/ (the pages keep theirs)."""

    def handle_http_exception(self, error: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            return error
        return super().handle_http_exception(error)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized(message: str) -> None:
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="reference_crm"'})


def _require_location() -> None:
    key = _bearer()
    if key is None:
        _unauthorized("send the location's API key as `Authorization: Bearer <key>`")
    location = locations.location_for_key(db(), key or "")
    if location is None:
        _unauthorized("unknown API key")
    g.location = location


def _lone_surrogate_at(value: Any, path: str = "") -> str | None:
    """Where a parsed JSON body holds a lone surrogate (JSON may escape "\\ud800", which is no
    character and cannot be stored): a dotted path such as "lines.0.name", or None."""
    if isinstance(value, str):
        return (path or "_body") if any("\ud800" <= ch <= "\udfff" for ch in value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        name = str(key).encode("utf-8", "backslashreplace").decode()  # a bad field name, shown escaped
        here = f"{path}.{name}" if path else name
        if name != str(key):
            return here
        found = _lone_surrogate_at(item, here)
        if found is not None:
            return found
    return None


def _refuse_lone_surrogates() -> None:
    """A body with invalid Unicode is malformed: 400 naming the field, before any schema sees it."""
    if request.is_json:
        where = _lone_surrogate_at(request.get_json(silent=True))
        if where is not None:
            abort(400, message="the body is not valid Unicode",
                  errors={"json": {where: ["must not contain lone surrogates (invalid Unicode)"]}})


def location() -> Location:
    current: Location = g.location
    return current


def _commit(events: list[Any]) -> None:
    crm_state().commit(db(), location().id, events)


def invoice_out(row: InvoiceRow) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in schemas.InvoiceOut().fields if hasattr(row, name)}
    data["balance"] = row.total - row.amount_paid
    data["lines"] = invoices.invoice_lines(db(), row.id)
    return data


# -- locations (admin) ----------------------------------------------------------------------------
location_bp = Blueprint("crm_api_locations", __name__, url_prefix="/api/locations",
                        description="Create locations (needs the admin token).")
location_bp.before_request(_refuse_lone_surrogates)


@location_bp.route("")
class LocationCollection(MethodView):
    @location_bp.doc(security=[{"adminToken": []}])
    @location_bp.arguments(schemas.LocationIn)
    @location_bp.response(201, schemas.LocationOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a location with its first user and API key (Authorization: Bearer <admin token>)."""
        expected = crm_state().config.admin_token
        if expected is None:
            abort(403, message="creating locations is disabled: set REFERENCE_CRM_ADMIN_TOKEN")
        if not hmac.compare_digest((_bearer() or "").encode(), (expected or "").encode()):
            _unauthorized("send the admin token as `Authorization: Bearer <token>`")
        session = db()
        new, user, key, password = locations.create_location(
            session, data["name"], data["currency"], data["user"], data["tax_rates"])
        session.commit()
        return {"id": new.id, "name": new.name, "currency": new.currency, "api_key": key,
                "login": {"email": user.email, "password": password},
                "tax_rates": locations.list_tax_rates(session, new.id)}


# -- the authenticated location -------------------------------------------------------------------
crm_bp = Blueprint("crm_api", __name__, url_prefix="/api", description="A location's records.")
crm_bp.before_request(_require_location)
crm_bp.before_request(_refuse_lone_surrogates)


@crm_bp.route("/location")
@crm_bp.doc(security=SECURITY)
@crm_bp.response(200, schemas.LocationInfoOut)
def get_location() -> Location:
    """The location the key belongs to."""
    return location()


@crm_bp.route("/tax-rates")
class TaxRates(MethodView):
    @crm_bp.doc(security=SECURITY)
    @crm_bp.response(200, schemas.TaxRateOut(many=True))
    def get(self) -> list[Any]:
        """The location's tax rates (invoice lines name them by id)."""
        return locations.list_tax_rates(db(), location().id)

    @crm_bp.doc(security=SECURITY)
    @crm_bp.arguments(schemas.TaxRateIn)
    @crm_bp.response(201, schemas.TaxRateOut)
    def post(self, data: dict[str, Any]) -> Any:
        rate = locations.add_tax_rate(db(), location().id, data["name"], data["rate_percent"])
        _commit([])
        return rate


@crm_bp.route("/contacts")
class Contacts(MethodView):
    @crm_bp.doc(security=SECURITY)
    @crm_bp.response(200, schemas.ContactOut(many=True))
    def get(self) -> list[Any]:
        """All contacts, newest first."""
        return contacts.list_contacts(db(), location().id)

    @crm_bp.doc(security=SECURITY)
    @crm_bp.arguments(schemas.ContactIn)
    @crm_bp.response(201, schemas.ContactOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a contact (publishes contact.created)."""
        row, event = contacts.create_contact(db(), location().id, data)
        _commit([event])
        return row


@crm_bp.route("/contacts/<contact_id>")
class ContactItem(MethodView):
    @crm_bp.doc(security=SECURITY)
    @crm_bp.response(200, schemas.ContactOut)
    def get(self, contact_id: str) -> Any:
        return contacts.get_contact_row(db(), location().id, contact_id)

    @crm_bp.doc(security=SECURITY)
    @crm_bp.arguments(schemas.ContactPatch(partial=True))
    @crm_bp.response(200, schemas.ContactOut)
    def patch(self, data: dict[str, Any], contact_id: str) -> Any:
        """Change some fields (publishes contact.updated when something changed)."""
        row = contacts.get_contact_row(db(), location().id, contact_id)
        _commit([contacts.update_contact(db(), row, data)])
        return row


@crm_bp.route("/invoices")
class Invoices(MethodView):
    @crm_bp.doc(security=SECURITY)
    @crm_bp.response(200, schemas.InvoiceOut(many=True))
    def get(self) -> list[dict[str, Any]]:
        """All invoices but deleted ones, newest first (?contact_id= narrows)."""
        return [invoice_out(row) for row in invoices.list_invoices(db(), location().id, request.args.get("contact_id"))]

    @crm_bp.doc(security=SECURITY)
    @crm_bp.arguments(schemas.InvoiceIn)
    @crm_bp.response(201, schemas.InvoiceOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a draft (QuickBooks hears of it when it is sent)."""
        row = invoices.create_invoice(db(), location().id, data)
        _commit([])
        return invoice_out(row)


@crm_bp.route("/invoices/<invoice_id>")
class InvoiceItem(MethodView):
    @crm_bp.doc(security=SECURITY)
    @crm_bp.response(200, schemas.InvoiceOut)
    def get(self, invoice_id: str) -> dict[str, Any]:
        return invoice_out(invoices.get_invoice_row(db(), location().id, invoice_id))

    @crm_bp.doc(security=SECURITY)
    @crm_bp.arguments(schemas.InvoicePatch(partial=True))
    @crm_bp.response(200, schemas.InvoiceOut)
    def patch(self, data: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        """Change a draft or sent invoice; lines, when given, replace all lines."""
        row = invoices.get_invoice_row(db(), location().id, invoice_id)
        _commit([invoices.update_invoice(db(), row, data)])
        return invoice_out(row)

    @crm_bp.doc(security=SECURITY)
    @crm_bp.response(204)
    def delete(self, invoice_id: str) -> None:
        """Delete an invoice without payments (publishes invoice.deleted if it was sent)."""
        row = invoices.get_invoice_row(db(), location().id, invoice_id)
        _commit([invoices.delete_invoice(db(), row)])


@crm_bp.route("/invoices/<invoice_id>/send", methods=["POST"])
@crm_bp.doc(security=SECURITY)
@crm_bp.response(200, schemas.InvoiceOut)
def send_invoice(invoice_id: str) -> dict[str, Any]:
    """Send a draft (publishes invoice.sent)."""
    row = invoices.get_invoice_row(db(), location().id, invoice_id)
    _commit([invoices.send_invoice(db(), row)])
    return invoice_out(row)


@crm_bp.route("/invoices/<invoice_id>/void", methods=["POST"])
@crm_bp.doc(security=SECURITY)
@crm_bp.response(200, schemas.InvoiceOut)
def void_invoice(invoice_id: str) -> dict[str, Any]:
    """Void a sent invoice without payments (publishes invoice.voided)."""
    row = invoices.get_invoice_row(db(), location().id, invoice_id)
    _commit([invoices.void_invoice(db(), row)])
    return invoice_out(row)


@crm_bp.route("/payments")
class Payments(MethodView):
    @crm_bp.doc(security=SECURITY)
    @crm_bp.response(200, schemas.PaymentOut(many=True))
    def get(self) -> list[Any]:
        """All payments, newest first (?invoice_id= narrows)."""
        return payments.list_payments(db(), location().id, request.args.get("invoice_id"))

    @crm_bp.doc(security=SECURITY)
    @crm_bp.arguments(schemas.PaymentIn)
    @crm_bp.response(201, schemas.PaymentOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Take a payment: source order_form, subscription, membership or calendar (with contact_id),
        or invoice (with invoice_id; moves the invoice's amount paid and status)."""
        row, events = payments.record_payment(db(), location().id, data)
        _commit(list(events))
        return row


@crm_bp.route("/payments/<payment_id>")
@crm_bp.doc(security=SECURITY)
@crm_bp.response(200, schemas.PaymentOut)
def get_payment(payment_id: str) -> Any:
    return payments.get_payment_row(db(), location().id, payment_id)


@crm_bp.route("/automation-log")
@crm_bp.doc(security=SECURITY)
@crm_bp.response(200, schemas.AutomationOut(many=True))
def automation_log() -> list[Any]:
    """Trigger calls received from the QuickBooks plugin, newest first."""
    return automation.list_automation_log(db(), location().id)


@crm_bp.route("/messages")
@crm_bp.doc(security=SECURITY)
@crm_bp.response(200, schemas.MessageOut(many=True))
def messages() -> list[Any]:
    """Messages the automations sent (review requests), newest first."""
    return automation.list_messages(db(), location().id)


def register_api(app: Flask) -> CrmApi:
    app.config.setdefault(f"{CONFIG_PREFIX}API_TITLE", "reference_crm")
    app.config.setdefault(f"{CONFIG_PREFIX}API_VERSION", "1")
    app.config.setdefault(f"{CONFIG_PREFIX}OPENAPI_VERSION", "3.0.3")
    app.config.setdefault(f"{CONFIG_PREFIX}OPENAPI_URL_PREFIX", "/api")
    app.config.setdefault(f"{CONFIG_PREFIX}OPENAPI_JSON_PATH", "openapi.json")
    api = CrmApi(app, config_prefix=CONFIG_PREFIX)
    api.spec.components.security_scheme("locationKey", {"type": "http", "scheme": "bearer",
                                                        "description": "A location's API key."})
    api.spec.components.security_scheme("adminToken", {"type": "http", "scheme": "bearer",
                                                       "description": "REFERENCE_CRM_ADMIN_TOKEN."})
    api.register_blueprint(location_bp)
    api.register_blueprint(crm_bp)
    return api

