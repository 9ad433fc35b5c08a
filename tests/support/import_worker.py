"""Run one import in this process (the crash test starts it as a subprocess and SIGKILLs it).

    python -m tests.support.import_worker CONFIG_JSON HOST_DB TENANT
"""

from __future__ import annotations

import json
import sys

from crm_qbo_plugin.inbound.importer import run_import
from crm_qbo_plugin.state import get_state
from tests.support.file_host import FileHost
from tests.support.plugin_app import create_app


def main(argv: list[str]) -> int:
    config_path, host_path, tenant = argv
    with open(config_path) as handle:
        config = json.load(handle)
    app = create_app(config, FileHost(host_path))  # type: ignore[arg-type]
    with app.app_context():
        run = run_import(get_state(), tenant)
    print(run.status if run else "none", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
