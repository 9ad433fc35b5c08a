"""The card and its connect / callback / unlink routes.

The tenant always comes from the host's signed-in user. The callback refuses forged, reused,
expired or foreign state before anything is stored (see connections.lifecycle).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from crm_qbo_plugin.onboarding.lifecycle import (
    ConnectRefused,
    authorization_url,
    complete_connect,
    get_connection,
    unlink,
)
from crm_qbo_plugin.onboarding.xero_connect import complete_xero_connect, xero_authorization_url
from crm_qbo_plugin.qbo import QboError
from crm_qbo_plugin.runtime.status import UNREADABLE, check_authorisation
from crm_qbo_plugin.state import PluginState, get_state
from crm_qbo_plugin.store.card_settings import card_settings
from crm_qbo_plugin.store.types import Provider
from crm_qbo_plugin.web import wording
from crm_qbo_plugin.web.day_budget import day_budget_warning
from crm_qbo_plugin.web.guard import check_csrf, csrf_token, require_user, session_nonce
from crm_qbo_plugin.xero import XeroError

bp = Blueprint("crm_qbo_connect", __name__, template_folder="templates")


@bp.get("/")
def card() -> str:
    user = require_user()
    state = get_state()
    return _card(state, user.tenant)


def _card(state: PluginState, tenant: str, refusal: ConnectRefused | None = None) -> str:
    connection = check_authorisation(state, get_connection(state, tenant))
    books = wording.books_of(connection.provider if connection is not None else None)
    return render_template("crm_qbo/card.html", connection=connection, settings=card_settings(connection),
                           manifest=state.manifest, qbo_csrf=csrf_token(), refusal=refusal,
                           unreadable=UNREADABLE, books=books, say=lambda text: wording.speak(text, books),
                           connect_labels=wording.connect_labels(books, connection.status if connection else "disconnected"),
                           offers_xero=state.xero_identity is not None,
                           day_budget=day_budget_warning(state, connection))


@bp.post("/connect")
def connect() -> Response | tuple[str, int]:
    user = require_user()
    check_csrf()
    if request.form.get("provider") == Provider.XERO.value:
        state = get_state()
        try:
            url = xero_authorization_url(state, user, session_nonce(create=True) or "",
                                         switch_company=request.form.get("switch_company") == "confirmed",
                                         import_invoices=request.form.get("import_invoices") == "on")
        except ConnectRefused as exc:
            return _card(state, user.tenant, exc), 400
        return redirect(url, code=303)
    url = authorization_url(
        get_state(), user, session_nonce(create=True) or "",
        switch_company=request.form.get("switch_company") == "confirmed",
        import_invoices=request.form.get("import_invoices") == "on",
    )
    return redirect(url, code=303)


@bp.get("/callback")
def callback() -> Response | tuple[str, int]:
    user = require_user()
    state = get_state()
    try:
        connection = complete_connect(state, user, session_nonce(), request.args.to_dict())
    except ConnectRefused as exc:
        return _card(state, user.tenant, exc), 400
    except QboError as exc:
        refusal = ConnectRefused("intuit_error", f"QuickBooks did not complete the connection ({exc.code or 'error'}). Try again.")
        return _card(state, user.tenant, refusal), 502
    flash(f"Connected to {connection.company_name or 'QuickBooks'}.")
    return redirect(url_for("crm_qbo.crm_qbo_connect.card"), code=303)


@bp.get("/xero/callback")
def xero_callback() -> Response | tuple[str, int]:
    user = require_user()
    state = get_state()
    try:
        connection = complete_xero_connect(state, user, session_nonce(), request.args.to_dict())
    except ConnectRefused as exc:
        return _card(state, user.tenant, exc), 400
    except XeroError as exc:
        refusal = ConnectRefused("xero_error", f"Xero did not complete the connection ({type(exc).__name__}). Try again.")
        return _card(state, user.tenant, refusal), 502
    flash(f"Connected to {connection.company_name or 'Xero'}.")
    return redirect(url_for("crm_qbo.crm_qbo_connect.card"), code=303)


@bp.post("/unlink")
def disconnect() -> Response:
    user = require_user()
    check_csrf()
    state = get_state()
    was = get_connection(state, user.tenant)
    if unlink(state, user.tenant):
        books = wording.books_of(was.provider if was is not None else None).name
        flash(f"{books} was disconnected. Nothing syncs until you connect again.")
    return redirect(url_for("crm_qbo.crm_qbo_connect.card"), code=303)
