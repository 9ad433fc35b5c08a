"""crm_qbo_plugin.qbo stands alone: no other plugin package, no Flask, rq or database (DESIGN §2)."""

from __future__ import annotations

import ast
from pathlib import Path

import crm_qbo_plugin.qbo as qbo

FORBIDDEN_ROOTS = {"flask", "rq", "sqlalchemy", "sqlmodel", "alembic", "psycopg", "apscheduler", "werkzeug"}


def test_qbo_imports_only_itself_stdlib_and_http_libraries() -> None:
    package_dir = Path(qbo.__file__).parent
    offenders = []
    for path in sorted(package_dir.glob("*.py")):
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
                if root == "crm_qbo_plugin" and not name.startswith("crm_qbo_plugin.qbo"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
