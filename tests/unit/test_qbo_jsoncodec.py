"""Money stays Decimal both ways: no float ever touches an amount."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from crm_qbo_plugin.qbo import jsoncodec


def test_point_one_plus_point_two_is_exact() -> None:
    total = Decimal("0.1") + Decimal("0.2")
    body = jsoncodec.dumps({"Line": [{"Amount": total}], "TotalAmt": total})
    assert body == b'{"Line":[{"Amount":0.3}],"TotalAmt":0.3}'
    parsed = jsoncodec.loads(body)
    assert parsed["TotalAmt"] == Decimal("0.3")
    assert isinstance(parsed["Line"][0]["Amount"], Decimal)


def test_decimal_digits_are_kept() -> None:
    assert jsoncodec.dumps([Decimal("10.50"), Decimal("1E+2"), Decimal("-0.005")]) == b"[10.50,100,-0.005]"
    assert jsoncodec.loads(b"[10.50]") == [Decimal("10.50")]


def test_integer_amounts_become_decimal_other_ints_stay(samples_dir: Path) -> None:
    data = jsoncodec.loads((samples_dir / "batch-response.json").read_bytes())
    receipt = data["BatchItemResponse"][3]["QueryResponse"]["SalesReceipt"][0]
    assert receipt["Line"][0]["SalesItemLineDetail"]["UnitPrice"] == Decimal(75)
    assert isinstance(receipt["Line"][0]["SalesItemLineDetail"]["UnitPrice"], Decimal)
    assert isinstance(receipt["Balance"], Decimal)
    assert receipt["Line"][0]["LineNum"] == 1 and type(receipt["Line"][0]["LineNum"]) is int
    assert type(data["BatchItemResponse"][3]["QueryResponse"]["maxResults"]) is int


def test_invoice_sample_round_trip(samples_dir: Path) -> None:
    raw = (samples_dir / "invoice-read-response.json").read_bytes()
    data = jsoncodec.loads(raw)
    assert jsoncodec.loads(jsoncodec.dumps(data)) == data


def test_strings_unicode_dates() -> None:
    body = jsoncodec.dumps({"DisplayName": "Zoë \"Q\" O'Brien\\", "TxnDate": date(2025, 1, 2),
                            "At": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "x": None, "b": [True, False]})
    assert jsoncodec.loads(body) == {"DisplayName": "Zoë \"Q\" O'Brien\\", "TxnDate": "2025-01-02",
                                     "At": "2025-01-02T03:04:05+00:00", "x": None, "b": [True, False]}
    assert "Zoë".encode() in body


@pytest.mark.parametrize("bad", [0.1, Decimal("NaN"), Decimal("Infinity"), {1: "x"}, object(),
                                 datetime(2025, 1, 1)])  # noqa: DTZ001
def test_dumps_rejects(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        jsoncodec.dumps({"Amount": bad})


def test_to_decimal() -> None:
    assert jsoncodec.to_decimal(5) == Decimal(5)
    assert jsoncodec.to_decimal("1.10") == Decimal("1.10")
    with pytest.raises(TypeError):
        jsoncodec.to_decimal(1.1)
