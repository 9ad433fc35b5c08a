"""CardSettings: the stored JSON parsed into types, and written back in one canonical form."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from crm_qbo_plugin.store.card_settings import CardSettings, stored_with


def test_stored_values_parse_into_their_types():
    parsed = CardSettings.from_stored({
        "import_invoices": True, "review_request": True, "auto_sync": False, "revenue_account_id": "79",
        "taxes_confirmed": True, "tax_mapping": {"vat20": "3"}, "sync_from": "2026-01-01",
        "review_request_since": "2026-02-03T04:05:06.123456+00:00", "from_an_older_version": 1})
    assert parsed == CardSettings(import_invoices=True, review_request=True, auto_sync=False, revenue_account_id="79",
                                  taxes_confirmed=True, tax_mapping={"vat20": "3"}, sync_from=date(2026, 1, 1),
                                  review_request_since=datetime(2026, 2, 3, 4, 5, 6, 123456, tzinfo=UTC))


def test_a_naive_time_is_read_as_utc_so_comparisons_with_quickbooks_times_work():
    since = CardSettings.from_stored({"review_request_since": "2026-02-03T04:05:06"}).review_request_since
    assert since == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize("raw", [None, [], "settings", 42])
def test_a_stored_value_that_is_not_an_object_reads_as_the_defaults(raw):
    assert CardSettings.from_stored(raw) == CardSettings()


def test_writing_keeps_other_keys_and_stores_dates_and_times_as_iso_text():
    raw = {"auto_sync": "false", "from_an_older_version": 1}
    written = stored_with(raw, {"sync_from": date(2026, 1, 1), "review_request_since": datetime(2026, 2, 3, tzinfo=UTC),
                                "tax_mapping": {"vat20": "3"}})
    assert written == {"auto_sync": "false", "from_an_older_version": 1, "sync_from": "2026-01-01",
                       "review_request_since": "2026-02-03T00:00:00+00:00", "tax_mapping": {"vat20": "3"}}
    assert raw == {"auto_sync": "false", "from_an_older_version": 1}  # the input is not changed
    assert CardSettings.from_stored(written).sync_from == date(2026, 1, 1)


def test_only_card_settings_can_be_written():
    with pytest.raises(ValueError, match="not card settings: colour"):
        stored_with({}, {"colour": "red"})
