"""Persistence belongs in store/: no module outside it runs SQL — no session or engine transaction
of its own, no select/insert/update/delete built, no statement executed. A use case says what to
keep (a store function named for it) and, where several writes must commit together, hands the
store's `transaction` connection to the store functions that take one."""

from __future__ import annotations

import ast
from pathlib import Path

import crm_qbo_plugin

ROOT = Path(crm_qbo_plugin.__file__).parent
STATEMENTS = {"select", "insert", "update", "delete", "text"}
SQL_PACKAGES = {"sqlalchemy", "sqlmodel"}


def _outside_store() -> list[Path]:
    return [p for p in sorted(ROOT.rglob("*.py"))
            if p.relative_to(ROOT).parts[0] not in ("store", "migrations")]


def _sql_in(path: Path) -> list[str]:
    found: list[str] = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names if alias.name.split(".")[0] in SQL_PACKAGES}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = {alias.name for alias in node.names}
            if node.module.split(".")[0] in SQL_PACKAGES and names & STATEMENTS:
                found.append(f"line {node.lineno}: from {node.module} import {', '.join(sorted(names & STATEMENTS))}")
            if node.module == "crm_qbo_plugin.store.db" and "session" in names:
                found.append(f"line {node.lineno}: from crm_qbo_plugin.store.db import session")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            owner = func.value
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
            if func.attr in ("begin", "connect") and owner_name == "engine":
                found.append(f"line {node.lineno}: engine.{func.attr}()")
            elif func.attr in ("execute", "exec"):
                found.append(f"line {node.lineno}: .{func.attr}()")
            elif func.attr in STATEMENTS and owner_name in aliases:
                found.append(f"line {node.lineno}: {owner_name}.{func.attr}()")
    return found


def test_no_module_outside_store_runs_sql():
    found = [f"{path.relative_to(ROOT)} {hit}" for path in _outside_store() for hit in _sql_in(path)]
    assert found == []
