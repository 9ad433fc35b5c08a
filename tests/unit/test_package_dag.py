"""The plugin's packages form a DAG, top to bottom: a module may import only layers below its own.

A new upward (or sideways) import fails here with the file and the import; move the code down or
the caller up instead of adding a lazy import. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import crm_qbo_plugin

# Top to bottom. Names in one layer may not import each other (but in the Flask layer, at the top).
LAYERS: list[set[str]] = [
    {"__init__", "__main__", "web", "cli", "extension", "state"},  # the Flask layer (state: old names)
    {"jobs"},  # rq task entry points and the scheduler
    {"onboarding"},  # connect, company, OAuth state, key rotation, keepalive
    {"inbound", "outbound", "reconcile"},
    {"automations"},
    {"runtime"},  # services, locks, the queue, per-realm clients, connection status
    {"store"},
    {"mapping"},
    {"qbo", "xero"},  # the accounting-system clients: siblings, neither imports the other
    {"apiclient"},  # what both clients share: retries, token refresh, limiter slots, exact JSON
    {"settings", "manifest"},
    {"events", "crypto", "signing", "metrics", "logs"},
    {"host"},
]
FLASK_LAYER = LAYERS[0]
ROOT = Path(crm_qbo_plugin.__file__).parent


def _unit(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def _modules() -> list[Path]:
    return [p for p in sorted(ROOT.rglob("*.py")) if "migrations" not in p.relative_to(ROOT).parts]


def _rank(unit: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if unit in layer:
            return rank
    raise AssertionError(f"crm_qbo_plugin.{unit} is in no layer of the DAG: add it to LAYERS")


def test_no_package_imports_a_package_above_or_beside_it():
    upward = []
    for path in _modules():
        source = _unit(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "crm_qbo_plugin" or len(parts) < 2 or parts[1] == source:
                continue
            if _rank(parts[1]) < _rank(source) or (_rank(parts[1]) == _rank(source) and source not in FLASK_LAYER):
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_nothing_below_the_flask_layer_imports_flask():
    found = [f"{path.relative_to(ROOT)} imports {name}" for path in _modules() if _unit(path) not in FLASK_LAYER
             for name in _imports(path) if name.split(".")[0] == "flask"]
    assert found == []


def test_only_the_queue_module_knows_rq():
    found = [str(path.relative_to(ROOT)) for path in _modules()
             if _unit(path) not in FLASK_LAYER and path.relative_to(ROOT) != Path("runtime/queue.py")
             and any(name.split(".")[0] == "rq" for name in _imports(path))]
    assert found == []


def test_mapping_and_the_clients_import_only_host_apiclient_and_their_own():
    allowed = {"mapping": {"mapping", "host", "qbo", "xero"}, "qbo": {"qbo", "host", "apiclient"},
               "xero": {"xero", "host", "apiclient"}, "apiclient": {"apiclient"}}
    found = [f"{path.relative_to(ROOT)} imports {name}" for path in _modules() if _unit(path) in allowed
             for name in _imports(path) if name.split(".")[0] == "crm_qbo_plugin"
             and name.split(".")[1] not in allowed[_unit(path)]]
    assert found == []


def test_every_module_is_in_a_layer():
    for path in _modules():
        _rank(_unit(path))
