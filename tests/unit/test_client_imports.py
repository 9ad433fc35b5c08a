"""The accounting-system clients stand alone: ``qbo`` and ``xero`` import only themselves, the
shared ``apiclient`` (and ``xero`` ``host``), never Flask, rq, the database or each other, not even
through a package ``__init__`` (DESIGN §2); ``apiclient`` imports nothing of the plugin."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN_ROOTS = {"flask", "rq", "sqlalchemy", "sqlmodel", "alembic", "psycopg", "apscheduler", "werkzeug",
                   "xero_python", "xero", "xero_sandbox"}
MAY_IMPORT = {  # package → the plugin packages its modules may import
    "apiclient": ("apiclient",),
    "qbo": ("qbo", "apiclient"),
    "xero": ("xero", "apiclient", "host"),
}


def _allowed(name: str, package: str) -> bool:
    return any(name == f"crm_qbo_plugin.{p}" or name.startswith(f"crm_qbo_plugin.{p}.") for p in MAY_IMPORT[package])


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_client_package_imports_only_what_it_may(package: str) -> None:
    offenders = []
    for path in sorted(Path(importlib.import_module(f"crm_qbo_plugin.{package}").__file__ or "").parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                if root in FORBIDDEN_ROOTS or (root == "crm_qbo_plugin" and not _allowed(name, package)):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_client_package_loads_nothing_else_at_run_time(package: str) -> None:
    """Not only its own imports: the package ``__init__`` must not pull the rest in either."""
    code = (f"import json, sys; import crm_qbo_plugin.{package}; "
            "print(json.dumps(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(run.stdout)
    assert {m.split(".")[0] for m in loaded} & (FORBIDDEN_ROOTS | {"marshmallow", "redis_lock"}) == set()
    assert [m for m in loaded if m.startswith("crm_qbo_plugin.") and not _allowed(m, package)] == []


def test_mapping_imports_without_flask_rq_or_the_database_at_run_time() -> None:
    code = ("import json, sys; import crm_qbo_plugin.mapping; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(run.stdout))
    assert loaded & (FORBIDDEN_ROOTS | {"marshmallow", "redis_lock"}) == set()


def test_the_public_names_are_the_ones_the_package_exports() -> None:
    import crm_qbo_plugin

    assert sorted(crm_qbo_plugin.__all__) == sorted(crm_qbo_plugin._EXPORTS)
    assert all(getattr(crm_qbo_plugin, name).__name__ == name for name in crm_qbo_plugin.__all__)
