"""Run the inbound invoice hook once in its own process, with a host that logs triggers to a file
and (with DIE_AFTER_TRIGGER=1) SIGKILLs its own process right after the host call."""

from __future__ import annotations

import json
import os
import signal
import sys

from crm_qbo_plugin.automations.claims import complete_unfinished
from crm_qbo_plugin.automations.hooks import after_invoice_applied
from crm_qbo_plugin.onboarding.lifecycle import get_connection
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.state import get_state
from tests.support.fake_host import FakeHost
from tests.support.plugin_app import create_app


class DyingHost(FakeHost):
    def fire_trigger(self, call):  # type: ignore[no-untyped-def]
        with open(os.environ["TRIGGER_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"trigger": call.trigger, "idempotency_key": call.idempotency_key}) + "\n")
        if os.environ.get("DIE_AFTER_TRIGGER") == "1" and call.trigger == "review_request":
            os.kill(os.getpid(), signal.SIGKILL)


def main(realm: str, invoice_id: str) -> None:
    app = create_app(dict(os.environ), DyingHost())
    state = get_state(app)
    complete_unfinished(state)
    with client_for(state, realm) as qbo:
        invoice = qbo.read("Invoice", invoice_id)
    after_invoice_applied(state, get_connection(state, "loc-1"), invoice, "c1")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
