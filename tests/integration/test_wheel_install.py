"""The wheel a host installs is the product: built from the repository, installed into a new virtual
environment outside it, it creates its own tables (`crm-qbo db upgrade`, on SQLite and PostgreSQL) and
mounts into a minimal Flask host written here — with no source checkout on the path.

The new environment borrows the test environment's third-party packages through a `.pth` line (a plain
path: the editable install of the plugin there is not activated), so nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".run", ".demo", "build", "dist", "*.egg-info",
                                     "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "peers")

HOST_APP = textwrap.dedent('''
    """A host CRM in a dozen lines: one signed-in user, records in memory."""
    import os
    from flask import Flask
    from crm_qbo_plugin import HostUser, LocationProfile, QuickBooksPlugin


    class TinyHost:
        def current_user(self): return HostUser(id="u1", tenant="loc-1", name="Owner")
        def location_profile(self, tenant): return LocationProfile(currency="USD") if tenant == "loc-1" else None
        def get_contact(self, tenant, contact_id): return None
        def get_invoice(self, tenant, invoice_id): return None
        def get_payment(self, tenant, payment_id): return None
        def find_contact_by_email(self, tenant, email): return None
        def list_record_ids(self, tenant, kind): return []
        def upsert_contact(self, tenant, contact, origin): return contact.id or "c1"
        def upsert_invoice(self, tenant, invoice, origin): return invoice.id or "i1"
        def update_invoice_status(self, tenant, invoice_id, status, amount_paid): pass
        def fire_trigger(self, call): pass


    def create_app():
        app = Flask("tiny_host")
        app.config.update({k: v for k, v in os.environ.items() if k.startswith("CRM_QBO_")})
        app.config["SECRET_KEY"] = "tiny"
        app.extensions["tiny_plugin"] = QuickBooksPlugin(app, TinyHost())
        return app
''')

CHECK = textwrap.dedent('''
    import json, sys
    import crm_qbo_plugin
    from crm_qbo_plugin import EventType, HostEvent
    from tiny_host import create_app

    app = create_app()
    client = app.test_client()
    status = client.get("/integrations/quickbooks/api/status")
    spec = client.get("/integrations/quickbooks/api/openapi.json")
    with app.app_context():
        published = app.extensions["tiny_plugin"].publish(
            "loc-1", HostEvent(type=EventType.CONTACT_UPDATED, subject_id="c-7", key="k-1"))
    print(json.dumps({"plugin_file": crm_qbo_plugin.__file__, "status": status.status_code,
                      "connection": status.get_json().get("status"), "spec": spec.status_code,
                      "created": published.created,
                      "commands": sorted(app.cli.commands["crm-qbo"].commands)}))
''')


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crm-qbo-plugin wheel, built from a copy of the sources (the build leaves the tree untouched)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES, symlinks=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(work / "dist"), str(source)], check=True)
    [built] = (work / "dist").glob("crm_qbo_plugin-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment outside the repository with only the wheel installed in it."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    [target] = root.glob("lib/python*/site-packages")
    (target / "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install",
                    "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    return root


def test_the_wheel_ships_the_plugin_with_its_migrations_and_types(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {
        "crm_qbo_plugin"}  # the reference CRM and the sandbox are distributions of their own
    assert "crm_qbo_plugin/py.typed" in names
    assert "crm_qbo_plugin/plugin.yaml" in names
    assert "crm_qbo_plugin/migrations/env.py" in names
    assert "crm_qbo_plugin/migrations/versions/0001_create_plugin_tables.py" in names
    assert "crm_qbo_plugin/web/templates/crm_qbo/card.html" in names


@pytest.mark.postgres
def test_installed_wheel_creates_its_tables_and_mounts_in_a_host(
        venv: Path, database_url: str, redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "tiny_host.py").write_text(HOST_APP)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "CRM_QBO_DATABASE_URL": database_url,
        "CRM_QBO_REDIS_URL": redis_url,
        "CRM_QBO_CLIENT_ID": "tiny-client",
        "CRM_QBO_CLIENT_SECRET": "tiny-secret",
        "CRM_QBO_REDIRECT_URI": "http://127.0.0.1:5000/integrations/quickbooks/callback",
        "CRM_QBO_ENVIRONMENT": "sandbox",
        "CRM_QBO_WEBHOOK_VERIFIER_TOKEN": "tiny-verifier",
        "CRM_QBO_SECRET_KEYS": "n2VQmXkX2y4hT0u6lS0o1kq1gJ3Vd8Lw4pR2bQ5yZ3c=",
    }
    upgrade = subprocess.run([str(venv / "bin" / "crm-qbo"), "db", "upgrade"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.startswith("database is at revision ")

    run = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK], cwd=tmp_path,
                         env={**env, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["plugin_file"]).is_relative_to(venv)  # the wheel, not the checkout
    assert (result["status"], result["connection"], result["spec"], result["created"]) == (200, "disconnected", 200, True)
    assert "demo" not in result["commands"] and "sandbox" not in result["commands"]
    assert {"db", "worker", "scheduler"} <= set(result["commands"])


@pytest.mark.parametrize(("project", "expected"), [
    ("qbo_sandbox", {"qbo_sandbox/__main__.py", "qbo_sandbox/templates/consent.html"}),
    ("xero_sandbox", {"xero_sandbox/__main__.py", "xero_sandbox/templates/authorize.html"}),
    ("reference_crm", {"reference_crm/demo.py", "reference_crm/api/routes.py", "reference_crm/templates/base.html",
                       "reference_crm/templates/crm_qbo/layout.html", "reference_crm/static/style.css"}),
])
def test_the_sandbox_and_the_reference_crm_build_as_their_own_wheels(
        project: str, expected: set[str], tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES, symlinks=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source / project)], check=True)
    [built] = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(built).namelist())
    assert expected <= names
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {project}
