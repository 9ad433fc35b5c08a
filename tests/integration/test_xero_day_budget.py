"""Xero's daily budget of calls on the card: a warning once it runs low, saying that work then
waits and nothing is lost, and when it refills; no warning while plenty is left."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from sqlmodel import Session, select

from crm_qbo_plugin.state import get_state
from crm_qbo_plugin.store.tables import OutboxEvent
from tests.support.xero_stack import XeroStack, sent_invoice, xero_crm_stack, xero_sandbox

CARD = "/integrations/quickbooks/"


@pytest.fixture
def xero_url() -> Iterator[str]:
    with xero_sandbox() as url:
        yield url


def _per_day(stack: XeroStack, calls: int) -> None:
    answer = requests.patch(f"{stack.xero_url}/_sandbox/organisations/{stack.org}",
                            json={"limits": {"per_day": calls}}, timeout=10)
    assert answer.status_code == 200, answer.text



def _banner(page: str) -> str:
    found = re.search(r'<div class="banner warn( hidden)?" id="day-budget" role="status">([^<]*)</div>', page)
    assert found is not None
    return "" if found.group(1) else found.group(2)


def test_a_xero_budget_running_low_is_a_warning_on_the_card(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        sent_invoice(stack, "Ada")
        web = stack.sign_in()
        assert web.get(CARD + "api/status").json["day_budget_warning"] is None  # 5,000 a day: plenty left
        assert _banner(web.get(CARD).text) == ""
        _per_day(stack, 40)
        sent_invoice(stack, "Grace")
        warning = web.get(CARD + "api/status").json["day_budget_warning"]
        frees = re.search(r"the oldest free up from (\d{4}-\d\d-\d\d \d\d:\d\d UTC)\)", warning or "")
        assert frees is not None, warning
        calls = sum(stack.stats().values())
        assert warning == (
            f"Xero's daily budget of calls for this organisation is running low: {40 - calls} calls left. When it is "
            "spent, sending waits and nothing is lost: changes stay queued and go to Xero by themselves as the "
            f"budget refills (Xero counts the calls of the last 24 hours; the oldest free up from {frees.group(1)}).")
        assert _banner(web.get(CARD).text) == warning.replace("'", "&#39;")


def test_a_spent_xero_budget_says_so_and_the_waiting_invoice_is_kept(plugin_config, xero_url):
    with xero_crm_stack(plugin_config, xero_url) as stack:
        sent_invoice(stack, "Ada")
        _per_day(stack, sum(stack.stats().values()))
        invoice = sent_invoice(stack, "Grace")
        web = stack.sign_in()
        warning = web.get(CARD + "api/status").json["day_budget_warning"]
        assert warning is not None and warning.startswith("Xero's daily budget of calls for this organisation is spent.")
        with Session(get_state(stack.app).engine) as db:
            [waiting] = db.exec(select(OutboxEvent).where(OutboxEvent.subject_id == invoice["id"])).all()
        assert (waiting.status, waiting.last_error) == ("pending", "ThrottledError: Xero rate limit reached (day) (status=429)")
