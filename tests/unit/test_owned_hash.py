"""The owned-field hash: equal for QBO's echo of our write, different for any real edit."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from crm_qbo_plugin.mapping.owned import owned_hash


@pytest.fixture
def invoice(samples_dir):
    return json.loads((samples_dir / "invoice-read-response.json").read_text())["Invoice"]


def test_numbers_hash_by_value_and_qbo_computed_lines_are_ignored(invoice):
    same = json.loads(json.dumps(invoice), parse_float=Decimal)
    same["TotalAmt"] = Decimal(str(invoice["TotalAmt"])).quantize(Decimal("0.0001"))
    same["Line"] = [line for line in same["Line"] if line["DetailType"] != "SubTotalLineDetail"]
    same["MetaData"] = {"LastUpdatedTime": "2030-01-01T00:00:00Z"}
    same["SyncToken"] = "99"
    assert owned_hash("Invoice", same) == owned_hash("Invoice", invoice)


@pytest.mark.parametrize("edit", [
    lambda inv: inv.update(DueDate="2031-01-01"),
    lambda inv: inv["Line"][0].update(Amount=inv["Line"][0]["Amount"] + 1),
    lambda inv: inv["Line"][0].update(Description="changed"),
    lambda inv: inv.update(CustomerRef={"value": "999"}),
    lambda inv: inv["Line"].reverse(),
])
def test_any_owned_edit_changes_the_hash(invoice, edit):
    edited = json.loads(json.dumps(invoice))
    edit(edited)
    assert owned_hash("Invoice", edited) != owned_hash("Invoice", invoice)


def test_unknown_entities_are_refused():
    with pytest.raises(ValueError, match="no owned fields"):
        owned_hash("Vendor", {})
