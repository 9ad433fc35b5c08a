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


def test_qbo_and_mapping_import_without_flask_rq_or_the_database_at_run_time() -> None:
    """Not only their own imports: the package ``__init__`` must not pull the rest in either."""
    import json
    import subprocess
    import sys

    code = ("import json, sys; import crm_qbo_plugin.qbo, crm_qbo_plugin.mapping; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(run.stdout))
    assert loaded & (FORBIDDEN_ROOTS | {"marshmallow", "redis_lock"}) == set()


def test_the_public_names_are_the_ones_the_package_exports() -> None:
    import crm_qbo_plugin

    assert sorted(crm_qbo_plugin.__all__) == sorted(crm_qbo_plugin._EXPORTS)
    assert all(getattr(crm_qbo_plugin, name).__name__ == name for name in crm_qbo_plugin.__all__)
