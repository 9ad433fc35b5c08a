"""The sandbox's home page (``GET /``): what a newcomer who opens the printed "Sandbox QBO" link
needs — the companies it holds, how to reach their data, and where the docs are in the repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, render_template

if TYPE_CHECKING:
    from qbo_sandbox.app import Sandbox


def make_home_blueprint(sandbox: Sandbox) -> Blueprint:
    bp = Blueprint("qbo_sandbox_home", __name__, template_folder="templates")

    @bp.get("/")
    def home() -> str:
        companies = sorted(sandbox.companies.all(), key=lambda c: c.name.casefold())
        return render_template("home.html", companies=[c.settings() for c in companies],
                               now=sandbox.clock.now().isoformat(timespec="seconds"))

    return bp
