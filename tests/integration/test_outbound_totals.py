"""Property: for random invoices (lines, quantities, 3-decimal prices, line and invoice discounts,
several tax rates) really pushed to the sandbox, QBO's TotalAmt equals the CRM total to the cent,
for a US company (discounts and taxes folded into prices) and a GB one (discount line, tax codes)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_qbo_plugin import LineItem, Tax
from crm_qbo_plugin.events import EventType
from crm_qbo_plugin.runtime.clients import client_for
from crm_qbo_plugin.store.links import get_link
from tests.integration.outbound_helpers import (
    TENANT,
    connect,
    contact,
    invoice,
    make_app,
    publish,
    run_worker,
    state_of,
)
from tests.unit.test_mapping_outbound import crm_total

TAXES = (Tax("t1", "Standard", Decimal(20)), Tax("t2", "Reduced", Decimal(5)))
US_TAXES = (Tax("t1", "State", Decimal("8.25")), Tax("t2", "City", Decimal("1.5")))

lines_st = st.lists(st.builds(
    LineItem,
    name=st.sampled_from(["Alpha", "Beta", ""]),
    quantity=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("25"), places=2),
    unit_price=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("500"), places=3),
    discount=st.decimals(min_value=Decimal("0"), max_value=Decimal("3"), places=2),
    tax_ids=st.sampled_from([(), ("t1",), ("t2",)]),
), min_size=1, max_size=6)
discount_st = st.decimals(min_value=Decimal("0"), max_value=Decimal("15"), places=2)
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(app, realm, counter, lines, taxes, discount, **extra):
    n = next(counter)
    nets = sum(((li.quantity * li.unit_price - li.discount).quantize(Decimal("0.01")) for li in lines), Decimal(0))
    discount = min(discount, max(nets, Decimal(0)))
    total = crm_total(lines, taxes, discount)
    if total < 0:
        return
    inv = invoice(f"i{n}", lines=tuple(lines), total=total, taxes=taxes, discount_total=discount, **extra)
    app.extensions["crm_qbo"].host.invoices[(TENANT, inv.id)] = inv
    publish(app, EventType.INVOICE_SENT, inv.id)
    run_worker(app)
    link = get_link(state_of(app), TENANT, "invoice", inv.id)
    assert link.status == "synced", link.last_error
    with client_for(state_of(app), realm) as qbo:
        assert qbo.read("Invoice", link.qbo_id)["TotalAmt"] == total


def test_us_totals_match_to_the_cent(plugin_config, fake_host, sandbox_url):
    app, realm = make_app(plugin_config, fake_host, sandbox_url)
    connect(app, sandbox_url, realm)
    fake_host.contacts[(TENANT, "c1")] = contact()
    counter = itertools.count()

    @SETTINGS
    @given(lines_st, discount_st)
    def prop(lines, discount):
        _check(app, realm, counter, lines, US_TAXES, discount)

    prop()


def test_gb_totals_match_to_the_cent(plugin_config, fake_host, sandbox_url):
    spec = {"country": "GB", "tax_codes": [{"name": "VAT 20", "rate": 20}, {"name": "VAT 5", "rate": 5},
                                           {"name": "Zero", "rate": 0}]}
    app, realm = make_app(plugin_config, fake_host, sandbox_url, **spec)
    codes = requests.get(f"{sandbox_url}/_sandbox/companies/{realm}", timeout=10).json()["tax_codes"]
    by_rate = {rates[0]["rate"]: code for code, rates in codes.items()}
    connect(app, sandbox_url, realm, tax_mapping={"t1": by_rate[20.0], "t2": by_rate[5.0], "none": by_rate[0.0]})
    fake_host.contacts[(TENANT, "c1")] = contact()
    counter = itertools.count()

    @SETTINGS
    @given(lines_st, discount_st)
    def prop(lines, discount):
        _check(app, realm, counter, lines, TAXES, discount, currency="GBP")

    prop()
