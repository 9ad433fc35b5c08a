"""crm_qbo_plugin.xero stands alone like qbo/: no other plugin package but host, no Flask, rq or
database, not even through its package ``__init__``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import crm_qbo_plugin.xero as xero

FORBIDDEN_ROOTS = {"flask", "rq", "sqlalchemy", "sqlmodel", "alembic", "psycopg", "apscheduler",
                   "werkzeug", "xero_python", "xero", "xero_sandbox"}


def test_xero_imports_only_itself_host_stdlib_and_http_libraries() -> None:
    offenders = []
    for path in sorted(Path(xero.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                if root in FORBIDDEN_ROOTS:
                    offenders.append(f"{path.name}: {name}")
                if root == "crm_qbo_plugin" and not name.startswith(
                        ("crm_qbo_plugin.xero", "crm_qbo_plugin.host")):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_xero_imports_without_flask_rq_the_database_or_qbo_at_run_time() -> None:
    code = ("import json, sys; import crm_qbo_plugin.xero; "
            "print(json.dumps(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(run.stdout)
    roots = {m.split(".")[0] for m in loaded}
    assert roots & (FORBIDDEN_ROOTS | {"marshmallow"}) == set()
    assert [m for m in loaded if m.startswith("crm_qbo_plugin.")
            and not m.startswith(("crm_qbo_plugin.xero", "crm_qbo_plugin.host"))] == []
