"""Xero answers → typed errors; timestamps; the deterministic Idempotency-Key (pure)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_qbo_plugin.apiclient import jsoncodec
from crm_qbo_plugin.xero.client import idempotency_key
from crm_qbo_plugin.xero.errors import (
    NotFoundError,
    ReconnectRequired,
    ThrottledError,
    TransientError,
    UnexpectedResponseError,
    ValidationError,
    error_from_response,
)
from crm_qbo_plugin.xero.timestamps import format_if_modified_since, parse_date, parse_timestamp


def test_validation_errors_keep_every_message():
    body = json.dumps({"ErrorNumber": 10, "Type": "ValidationException",
                       "Message": "A validation exception occurred", "Elements": [
                           {"ValidationErrors": [{"Message": "Invoice # must be unique."}]},
                           {"ValidationErrors": [{"Message": "A"}, {"Message": "B"}]}]}).encode()
    error = error_from_response(400, body, {})
    assert isinstance(error, ValidationError) and not error.retryable
    assert error.messages == ("Invoice # must be unique.", "A", "B")
    assert isinstance(error_from_response(400, b"plain words", {}), ValidationError)


def test_statuses_map_to_what_the_caller_does_next():
    limited = error_from_response(429, b"", {"Retry-After": "17", "X-Rate-Limit-Problem": "day"})
    assert isinstance(limited, ThrottledError) and limited.retryable
    assert (limited.retry_after, limited.problem) == (17.0, "day")
    assert error_from_response(429, b"", {}).retry_after is None
    assert isinstance(error_from_response(404, b"The resource you're looking for cannot be found",
                                          {}), NotFoundError)
    problem = json.dumps({"Title": "Forbidden", "Status": 403,
                          "Detail": "AuthenticationUnsuccessful"}).encode()
    forbidden = error_from_response(403, problem, {})
    assert isinstance(forbidden, ReconnectRequired) and "AuthenticationUnsuccessful" in str(forbidden)
    assert isinstance(error_from_response(503, b"", {}), TransientError)
    assert isinstance(error_from_response(418, b"", {}), UnexpectedResponseError)


def test_timestamps_are_aware_utc():
    assert parse_timestamp("/Date(1551981568133+0000)/") == datetime(
        2019, 3, 7, 17, 59, 28, 133000, tzinfo=UTC)
    assert parse_timestamp("/Date(1551981568133+1300)/") == parse_timestamp(
        "/Date(1551981568133)/")
    assert parse_timestamp("2026-12-02T00:44:09.923") == datetime(2026, 12, 2, 0, 44, 9, 923000,
                                                                   tzinfo=UTC)
    assert parse_timestamp("2019-03-07T17:59:28Z").tzinfo is not None
    with pytest.raises(ValueError):
        parse_timestamp("soon")
    assert parse_date("/Date(1551916800000+0000)/") == date(2019, 3, 7)
    assert parse_date("2026-06-01T00:00:00") == date(2026, 6, 1)
    moment = datetime(2026, 1, 2, 16, 4, 5, 999, tzinfo=timezone(timedelta(hours=13)))
    assert format_if_modified_since(moment) == "Fri, 02 Jan 2026 03:04:05 GMT"
    with pytest.raises(ValueError):
        format_if_modified_since(datetime(2026, 1, 2))


def test_idempotency_key_is_deterministic_per_request_and_call():
    key = idempotency_key("outbox-17", "PUT", "/Invoices")
    assert key == idempotency_key("outbox-17", "PUT", "/invoices") and len(key) <= 128
    assert key != idempotency_key("outbox-18", "PUT", "/Invoices")
    assert key != idempotency_key("outbox-17", "POST", "/Invoices")
    with pytest.raises(ValueError):
        idempotency_key("", "PUT", "/Invoices")


def test_json_keeps_money_exact_and_refuses_floats():
    assert jsoncodec.dumps({"Amount": Decimal("0.30"), "Qty": 2, "ok": True, "n": None}) == \
        b'{"Amount":0.30,"Qty":2,"ok":true,"n":null}'
    assert jsoncodec.loads(b'{"Total": 115.10}')["Total"] == Decimal("115.10")
    with pytest.raises(TypeError):
        jsoncodec.dumps({"Amount": 0.3})
    with pytest.raises(ValueError):
        jsoncodec.dumps({"Amount": Decimal("NaN")})
