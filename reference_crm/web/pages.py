"""The CRM's pages: sign-in, contacts, invoices, payments, automations, settings.

Every page but sign-in needs a signed-in user, whose location scopes every query. Every POST
carries the session's CSRF token. Forms load through the API's schemas, so both refuse the same
input with the same messages.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from crm_qbo_plugin import PaymentSource
from reference_crm import automation, contacts, invoices, locations, payments, signin
from reference_crm.api import schemas
from reference_crm.errors import Conflict, Invalid
from reference_crm.models import InvoiceRow, Location
from reference_crm.state import crm_state
from reference_crm.web.request import db

bp = Blueprint("crm", __name__)

CSRF_KEY = "crm_csrf"
LINE_ROWS = 3
OPEN_ENDPOINTS = {"crm.login", "static"}


def csrf_token() -> str:
    token = session.get(CSRF_KEY)
    if token is None:
        token = session[CSRF_KEY] = secrets.token_urlsafe(24)
    return str(token)


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": g.get("user"), "current_location": g.get("location"),
            "books": _books()}


def _books() -> str:
    """The signed-in location's accounting system by name, for labels ("QuickBooks" until connected)."""
    location = g.get("location")
    if location is None:
        return "QuickBooks"
    return crm_state().plugin.books_name(location.id) or "QuickBooks"


@bp.app_template_filter("plain")
def plain_number(value: Any, places: int = 0) -> str:
    """A Decimal without trailing zeros, keeping at least `places` decimals (8.0000 → 8, 40.000 → 40.00)."""
    number = Decimal(str(value)).normalize()
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < places:
        number = number.quantize(Decimal(1).scaleb(-places))
    return f"{number:f}"


@bp.before_app_request
def _load_user() -> None:
    token = session.get(signin.SESSION_TOKEN)
    if token:
        user = signin.session_user(db(), token)
        if user is not None:
            g.user = user
            g.location = db().get(Location, user.location_id)


@bp.before_request
def _guard() -> Response | None:
    if request.method == "POST":
        sent = request.form.get("csrf_token", "").encode("utf-8", "surrogatepass")
        expected = session.get(CSRF_KEY)
        if not expected or not hmac.compare_digest(str(expected).encode(), sent):  # bytes: any text
            abort(400, description="The form expired. Reload the page and try again.")
    if request.endpoint not in OPEN_ENDPOINTS and g.get("user") is None:
        return redirect(url_for("crm.login", next=request.path))
    return None


def tenant() -> str:
    location: Location = g.location
    return location.id


def _commit(events: list[Any]) -> None:
    crm_state().commit(db(), tenant(), events)


def _load(schema: Schema, data: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        return None, flatten(exc.messages)


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"lines.0.name": [...]}."""
    if isinstance(messages, list):
        return {prefix or "_form": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in dict(messages).items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _form(*names: str) -> dict[str, str]:
    """The named form fields that were filled in (an empty field counts as not given)."""
    return {name: request.form[name].strip() for name in names if request.form.get(name, "").strip()}


# -- sign in / out --------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    if request.method == "POST":
        email, address = request.form.get("email", ""), request.remote_addr or ""
        wait = signin.retry_after(db(), email, address)
        if wait > 0:
            answer = Response(render_template("login.html", error=f"Too many sign-in attempts. Try again in "
                                              f"{wait} second{'s' if wait != 1 else ''}."), 429)
            answer.headers["Retry-After"] = str(wait)
            return answer
        user = locations.authenticate(db(), email, request.form.get("password", ""))
        if user is None:
            signin.record_failure(db(), email, address)
            return render_template("login.html", error="Wrong e-mail or password."), 401
        signin.clear_failures(db(), email)
        token = signin.start_session(db(), user)
        db().commit()
        session.clear()
        session[signin.SESSION_TOKEN] = token
        return redirect(signin.safe_next(request.args.get("next", "")) or url_for("crm.contact_list"))
    return render_template("login.html", error=None)


@bp.post("/logout")
def logout() -> Response:
    signin.end_session(db(), session.get(signin.SESSION_TOKEN))
    db().commit()
    session.clear()
    return redirect(url_for("crm.login"))


@bp.get("/")
def home() -> Response:
    return redirect(url_for("crm.contact_list"))


# -- contacts -------------------------------------------------------------------------------------
@bp.get("/contacts")
def contact_list() -> str:
    return render_template("contacts.html", contacts=contacts.list_contacts(db(), tenant()), name=contacts.display_name)


@bp.route("/contacts/new", methods=["GET", "POST"])
def contact_new() -> Response | str | tuple[str, int]:
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        data, errors = _load(schemas.ContactIn(), _form(*contacts.FIELDS))
        if data is not None:
            row, event = contacts.create_contact(db(), tenant(), data)
            _commit([event])
            flash(f"Contact {contacts.display_name(row)} created.")
            return redirect(url_for("crm.contact_detail", contact_id=row.id))
        return render_template("contact_form.html", contact=None, form=request.form, errors=errors), 422
    return render_template("contact_form.html", contact=None, form={}, errors=errors)


@bp.route("/contacts/<contact_id>/edit", methods=["GET", "POST"])
def contact_edit(contact_id: str) -> Response | str | tuple[str, int]:
    row = contacts.get_contact_row(db(), tenant(), contact_id)
    if request.method == "POST":
        given: dict[str, str | None] = {name: request.form.get(name, "").strip() for name in contacts.FIELDS}
        given["email"] = given["email"] or None
        data, errors = _load(schemas.ContactIn(), given)
        if data is not None:
            _commit([contacts.update_contact(db(), row, data)])
            flash("Contact saved.")
            return redirect(url_for("crm.contact_detail", contact_id=row.id))
        return render_template("contact_form.html", contact=row, form=request.form, errors=errors), 422
    form = {name: getattr(row, name) or "" for name in contacts.FIELDS}
    return render_template("contact_form.html", contact=row, form=form, errors={})


@bp.get("/contacts/<contact_id>")
def contact_detail(contact_id: str) -> str:
    row = contacts.get_contact_row(db(), tenant(), contact_id)
    return render_template(
        "contact.html", contact=row, name=contacts.display_name(row),
        invoices=invoices.list_invoices(db(), tenant(), contact_id=row.id),
        payments=[p for p in payments.list_payments(db(), tenant()) if p.contact_id == row.id],
        **_qbo_sync("contact", row.id),
    )


def _qbo_sync(kind: str, record_id: str) -> dict[str, Any]:
    """What the record's QuickBooks badge needs (None: the plugin never handled the record)."""
    return {"qbo_sync": crm_state().plugin.record_sync(tenant(), kind, record_id)}


@bp.post("/qbo/<kind>/<record_id>/retry")
def qbo_retry(kind: str, record_id: str) -> Response:
    """Retry from the record's own page (the badge's button)."""
    if kind not in ("contact", "invoice"):
        abort(404)
    if kind == "invoice":  # this location's record, or 404 (nothing is retried for another one)
        record_id = invoices.get_invoice_row(db(), tenant(), record_id).id
    else:
        record_id = contacts.get_contact_row(db(), tenant(), record_id).id
    try:
        crm_state().plugin.retry_record(tenant(), kind, record_id)
    except LookupError:
        flash("Nothing to retry for this record.", "error")
    else:
        flash("Sending to QuickBooks again.")
    if kind == "invoice":
        return redirect(url_for("crm.invoice_detail", invoice_id=record_id))
    return redirect(url_for("crm.contact_detail", contact_id=record_id))


@bp.post("/qbo/invoice/<invoice_id>/export")
def qbo_export(invoice_id: str) -> Response:
    """"Send to QuickBooks" on one invoice (automatic export off)."""
    row = invoices.get_invoice_row(db(), tenant(), invoice_id)
    try:
        crm_state().plugin.export_invoice(tenant(), row.id)
    except LookupError:
        flash("This invoice cannot be sent to QuickBooks.", "error")
    else:
        flash(f"Invoice {row.number} is on its way to QuickBooks.")
    return redirect(url_for("crm.invoice_detail", invoice_id=row.id))


# -- invoices -------------------------------------------------------------------------------------
@bp.get("/invoices")
def invoice_list() -> str:
    names = {c.id: contacts.display_name(c) for c in contacts.list_contacts(db(), tenant())}
    return render_template("invoices.html", invoices=invoices.list_invoices(db(), tenant()), names=names)


def _invoice_form_data() -> dict[str, Any]:
    data: dict[str, Any] = _form("contact_id", "issue_date", "due_date", "currency", "billing_email")
    lines = []
    for index in range(LINE_ROWS):
        fields = {name: request.form.get(f"line-{index}-{name}", "").strip()
                  for name in ("name", "sku", "quantity", "unit_price", "discount")}
        if not any(fields.values()):
            continue
        line: dict[str, Any] = {k: v for k, v in fields.items() if v}
        line["tax_ids"] = request.form.getlist(f"line-{index}-tax")
        lines.append(line)
    data["lines"] = lines
    return data


@bp.route("/invoices/new", methods=["GET", "POST"])
def invoice_new() -> Response | str | tuple[str, int]:
    page = {"contacts": contacts.list_contacts(db(), tenant()), "tax_rates": locations.list_tax_rates(db(), tenant()),
            "rows": range(LINE_ROWS), "name": contacts.display_name}
    if request.method == "POST":
        data, errors = _load(schemas.InvoiceIn(), _invoice_form_data())
        if data is not None:
            try:
                row = invoices.create_invoice(db(), tenant(), data)
            except Invalid as exc:
                errors = exc.errors
            else:
                _commit([])
                flash(f"Invoice {row.number} saved as a draft.")
                return redirect(url_for("crm.invoice_detail", invoice_id=row.id))
        db().rollback()
        return render_template("invoice_form.html", form=request.form, errors=errors, **page), 422
    form = {"contact_id": request.args.get("contact_id", ""), "line-0-quantity": "1"}
    return render_template("invoice_form.html", form=form, errors={}, **page)


@bp.get("/invoices/<invoice_id>")
def invoice_detail(invoice_id: str) -> str:
    row = invoices.get_invoice_row(db(), tenant(), invoice_id)
    contact = contacts.get_contact_row(db(), tenant(), row.contact_id)
    return render_template("invoice.html", invoice=row, lines=invoices.invoice_lines(db(), row.id),
                           contact=contact, name=contacts.display_name(contact),
                           payments=payments.list_payments(db(), tenant(), invoice_id=row.id),
                           **_qbo_sync("invoice", row.id))


@bp.post("/invoices/<invoice_id>/<action>")
def invoice_action(invoice_id: str, action: str) -> Response:
    row = invoices.get_invoice_row(db(), tenant(), invoice_id)
    operations = {"send": invoices.send_invoice, "void": invoices.void_invoice, "delete": invoices.delete_invoice}
    if action == "pay":
        return _pay_invoice(row.id)
    if action not in operations:
        abort(404)
    if action in CONFIRM and request.form.get("confirmed") != "yes":
        return _confirm(row, action)
    try:
        event = operations[action](db(), row)
    except Conflict as exc:
        flash(str(exc), "error")
        return redirect(url_for("crm.invoice_detail", invoice_id=row.id))
    _commit([event])
    flash({"send": f"Invoice {row.number} sent.", "void": f"Invoice {row.number} voided.",
           "delete": f"Invoice {row.number} deleted."}[action])
    if action == "delete":
        return redirect(url_for("crm.invoice_list"))
    return redirect(url_for("crm.invoice_detail", invoice_id=row.id))


CONFIRM = ("void", "delete")  # irreversible: asked before they happen


def _confirm(row: InvoiceRow, action: str) -> Response:
    """The question asked before a Void or a Delete; its form posts again with confirmed=yes."""
    number = row.number or row.id
    if action == "void":
        title, button = f"Void invoice {number}?", "Void invoice"
        text = ("Its amounts become zero and it can no longer be paid or changed. If QuickBooks is connected, "
                "the invoice is voided there too. This cannot be undone.")
    else:
        title, button = f"Delete invoice {number}?", "Delete invoice"
        text = ("It disappears from this CRM. It was sent: if QuickBooks is connected, QuickBooks keeps it, "
                "voided (amounts zero), for your accountant's audit trail. This cannot be undone."
                if row.sent_at is not None else "The draft disappears from this CRM. This cannot be undone.")
    return make_response(render_template("confirm.html", invoice=row, title=title, text=text, button=button))


def _pay_invoice(invoice_id: str) -> Response:
    data, errors = _load(schemas.PaymentIn(), {"source": PaymentSource.INVOICE.value, "invoice_id": invoice_id,
                                               **_form("amount", "reference")})
    if data is not None:
        try:
            _row, events = payments.record_payment(db(), tenant(), data)
        except (Invalid, Conflict) as exc:
            flash(str(exc), "error")
        else:
            _commit(list(events))
            flash("Payment recorded.")
    else:
        flash("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()), "error")
    return redirect(url_for("crm.invoice_detail", invoice_id=invoice_id))


# -- payments -------------------------------------------------------------------------------------
@bp.get("/payments")
def payment_list() -> str:
    names = {c.id: contacts.display_name(c) for c in contacts.list_contacts(db(), tenant())}
    return render_template("payments.html", payments=payments.list_payments(db(), tenant()), names=names)


@bp.route("/payments/new", methods=["GET", "POST"])
def payment_new() -> Response | str | tuple[str, int]:
    sources = [s for s in PaymentSource if s is not PaymentSource.INVOICE]
    page = {"contacts": contacts.list_contacts(db(), tenant()), "sources": sources, "name": contacts.display_name}
    if request.method == "POST":
        data, errors = _load(schemas.PaymentIn(), _form("source", "contact_id", "amount", "reference"))
        if data is not None:
            if data["source"] == PaymentSource.INVOICE.value:
                errors = {"source": ["record invoice payments from the invoice's page"]}
            else:
                try:
                    row, events = payments.record_payment(db(), tenant(), data)
                except Invalid as exc:
                    errors = exc.errors
                else:
                    _commit(list(events))
                    flash(f"Payment of {row.amount} {row.currency} recorded.")
                    return redirect(url_for("crm.payment_list"))
        db().rollback()
        return render_template("payment_form.html", form=request.form, errors=errors, **page), 422
    return render_template("payment_form.html", form={"contact_id": request.args.get("contact_id", "")},
                           errors={}, **page)


# -- automations and settings ---------------------------------------------------------------------
@bp.get("/automations")
def automation_page() -> str:
    names = {c.id: contacts.display_name(c) for c in contacts.list_contacts(db(), tenant())}
    return render_template("automations.html", log=automation.list_automation_log(db(), tenant()),
                           messages=automation.list_messages(db(), tenant()), names=names)


@bp.get("/settings")
def settings() -> str:
    return render_template("settings.html", tax_rates=locations.list_tax_rates(db(), tenant()), errors={}, form={})


@bp.post("/settings/tax-rates")
def add_tax_rate() -> Response | tuple[str, int]:
    data, errors = _load(schemas.TaxRateIn(), _form("name", "rate_percent"))
    if data is None:
        return render_template("settings.html", tax_rates=locations.list_tax_rates(db(), tenant()),
                               errors=errors, form=request.form), 422
    locations.add_tax_rate(db(), tenant(), data["name"], data["rate_percent"])
    _commit([])
    flash(f"Tax rate {data['name']} added.")
    return redirect(url_for("crm.settings"))


@bp.get("/settings/integrations")
def integrations() -> str:
    return render_template("integrations.html")
