"""Per request: one database session (rolled back unless the view committed), and answers for
the domain errors — JSON under /api/, a page elsewhere."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, render_template, request
from sqlmodel import Session

from reference_crm.db import session
from reference_crm.errors import Conflict, Invalid, NotFound
from reference_crm.state import crm_state


def db() -> Session:
    if "crm_db" not in g:
        g.crm_db = session(crm_state().engine)
    current: Session = g.crm_db
    return current


def _close(_exc: BaseException | None) -> None:
    current = g.pop("crm_db", None)
    if current is not None:
        current.close()  # an uncommitted transaction is rolled back: nothing half-written


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _answer(code: int, status: str, template_message: str, **payload: Any) -> Any:
    if _is_api():
        return {"code": code, "status": status, **payload}, code
    return render_template("error.html", code=code, status=status, message=template_message), code


def install(app: Flask) -> None:
    app.teardown_appcontext(_close)

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound) -> Any:
        return _answer(404, "Not Found", str(exc), message=str(exc))

    @app.errorhandler(Conflict)
    def _conflict(exc: Conflict) -> Any:
        return _answer(409, "Conflict", str(exc), message=str(exc))

    @app.errorhandler(Invalid)
    def _invalid(exc: Invalid) -> Any:
        return _answer(422, "Unprocessable Entity", str(exc), errors={"json": exc.errors})
