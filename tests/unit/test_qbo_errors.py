"""Fault parsing and classification, from the real fault samples in tests/fixtures/qbo-samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_qbo_plugin.qbo import jsoncodec
from crm_qbo_plugin.qbo.batch import BatchItem, assign_bids, parse_batch_response
from crm_qbo_plugin.qbo.errors import (
    AuthenticationError,
    AuthorizationError,
    BooksClosedError,
    DuplicateDocNumberError,
    DuplicateNameError,
    NotFoundError,
    QboError,
    ReconnectRequired,
    StaleObjectError,
    ThrottledError,
    TransientError,
    ValidationError,
    error_from_fault,
    error_from_oauth,
    error_from_response,
    parse_fault,
    redact,
)


def _fault(code: str, message: str = "msg", detail: str = "detail") -> bytes:
    return json.dumps(
        {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
                   "type": "ValidationFault"}, "time": "2017-09-29T09:17:31.892-07:00"}
    ).encode()


def test_duplicate_name_sample(samples_dir: Path) -> None:
    body = (samples_dir / "fault-duplicate-name-6240.json").read_bytes()
    error = error_from_response(400, body, intuit_tid="tid-1")
    assert type(error) is DuplicateNameError
    assert error.code == "6240"
    assert error.message == "Duplicate Name Exists Error"
    assert error.status == 400
    assert error.intuit_tid == "tid-1"
    assert error.element is None
    assert not error.retryable
    assert "intuit_tid=tid-1" in str(error)


def test_envelope_template_is_validation(samples_dir: Path) -> None:
    body = (samples_dir / "fault-envelope-template.json").read_bytes()
    error = error_from_response(400, body)
    assert type(error) is ValidationError
    assert error.code == "<code>"
    assert error.detail == "<detail>"


def test_lowercase_401_sample(samples_dir: Path) -> None:
    body = (samples_dir / "fault-401-authentication-3200.json").read_bytes()
    fault_type, errors = parse_fault(body)  # type: ignore[misc]
    assert fault_type == "AUTHENTICATION"
    assert errors[0].code == "3200"
    assert errors[0].message == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    error = error_from_response(401, body)
    assert type(error) is AuthenticationError
    assert error.code == "3200"


def test_xml_throttle_sample(samples_dir: Path) -> None:
    body = (samples_dir / "fault-throttle-429.xml").read_bytes()
    fault_type, errors = parse_fault(body)  # type: ignore[misc]
    assert fault_type == "SERVICE"
    assert errors[0].code == "3001"
    assert errors[0].detail == "The request limit was reached.  Try again later"
    error = error_from_response(429, body, retry_after=7.0)
    assert type(error) is ThrottledError
    assert error.retryable
    assert error.retry_after == 7.0
    assert error.message == "message=ThrottleExceeded; errorCode=003001; statusCode=429"


def test_invalid_grant_sample(samples_dir: Path) -> None:
    body = (samples_dir / "oauth-refresh-invalid-grant.json").read_bytes()
    error = error_from_oauth(400, body, intuit_tid="t")
    assert type(error) is ReconnectRequired
    assert isinstance(error, AuthenticationError)
    assert error.code == "invalid_grant"
    assert error.detail == "Incorrect or invalid refresh token"
    assert not error.retryable


def test_other_oauth_errors(samples_dir: Path) -> None:
    body = (samples_dir / "oauth-token-error-response.json").read_bytes()
    assert type(error_from_oauth(400, body)) is AuthenticationError
    assert type(error_from_oauth(503, b"<html>")) is TransientError
    assert type(error_from_oauth(429, b"")) is ThrottledError


def test_batch_response_sample_per_item_faults(samples_dir: Path) -> None:
    data = jsoncodec.loads((samples_dir / "batch-response.json").read_bytes())
    items = [
        BatchItem.create("Vendor", {"DisplayName": "Smith Family Store"}, bid="bid1"),
        BatchItem.delete("Invoice", "129", "0", bid="bid2"),
        BatchItem.update("SalesReceipt", {"Id": "11", "SyncToken": "0", "PrivateNote": "x"}, bid="bid3"),
        BatchItem.query("select * from SalesReceipt where TotalAmt > '300.00'", bid="bid4"),
    ]
    # request order differs from nothing here, but match by bId anyway: reverse the items
    results = parse_batch_response(data, items[::-1], [i.bid for i in items[::-1]])  # type: ignore[misc]
    by_bid = {r.bid: r for r in results}
    assert [r.bid for r in results] == ["bid4", "bid3", "bid2", "bid1"]
    assert type(by_bid["bid1"].error) is DuplicateNameError
    assert type(by_bid["bid2"].error) is NotFoundError
    assert type(by_bid["bid3"].error) is StaleObjectError
    assert by_bid["bid4"].ok
    rows = by_bid["bid4"].rows
    assert rows is not None and rows[0]["Id"] == "11"
    assert rows[0]["TotalAmt"] == jsoncodec.to_decimal("337.5")
    with pytest.raises(StaleObjectError):
        by_bid["bid3"].unwrap()


def test_batch_missing_answer_is_an_item_error() -> None:
    item = BatchItem.create("Customer", {"DisplayName": "A"})
    [result] = parse_batch_response({"BatchItemResponse": []}, [item], ["b0"])
    assert result.error is not None and not result.ok


def test_assign_bids_keeps_given_and_avoids_clashes() -> None:
    items = [BatchItem.query("select * from Item", bid="b0"), BatchItem.query("select * from Item"),
             BatchItem.query("select * from Item")]
    assert assign_bids(items) == ["b0", "b1", "b2"]
    with pytest.raises(ValueError):
        assign_bids([BatchItem.query("x", bid="x"), BatchItem.query("y", bid="x")])
    with pytest.raises(ValueError):
        assign_bids([BatchItem.query("x", bid="a-very-long-bid")])


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (400, "5010", "Stale Object Error", StaleObjectError),
        (400, "6240", "Duplicate Name Exists Error", DuplicateNameError),
        (400, "6140", "Duplicate Doc Num", DuplicateDocNumberError),
        (400, "610", "Object Not Found", NotFoundError),
        (400, "6210", "Account Period Closed", BooksClosedError),
        (400, "2020", "Required Param Missing", ValidationError),
        (400, "2050", "String length exceeds limit", ValidationError),
        (400, "4000", "Error parsing query", ValidationError),
        (400, "6190", "Invalid Company Status", ValidationError),
        (400, "6000", "A business validation error has occurred", ValidationError),
        (403, "120", "Authorization Failure", AuthorizationError),
        (500, "10000", "System Failure Error", TransientError),
        (503, "10000", "Service unavailable", TransientError),
        (200, "5010", "Stale Object Error", StaleObjectError),
    ],
)
def test_classification_by_code(status: int, code: str, message: str, expected: type[QboError]) -> None:
    error = error_from_response(status, _fault(code, message))
    assert type(error) is expected
    assert error.code == code


def test_6000_one_name_at_a_time_is_transient() -> None:
    body = _fault("6000", "A business validation error has occurred while processing your request",
                  "Business Validation Error: You can only add or edit one name at a time. Please try again.")
    error = error_from_response(400, body)
    assert type(error) is TransientError
    assert error.retryable
    body = _fault("6000", "x", "Business Validation Error: You can only add or edit one product or service at a time.")
    assert type(error_from_response(400, body)) is TransientError


def test_non_fault_bodies_classify_by_status() -> None:
    assert type(error_from_response(502, b"<html>bad gateway</html>")) is TransientError
    assert type(error_from_response(504, b"")) is TransientError
    assert type(error_from_response(401, b"")) is AuthenticationError
    assert type(error_from_response(404, b"not found")) is NotFoundError
    assert type(error_from_response(429, b"")) is ThrottledError
    assert type(error_from_response(400, b"???")) is ValidationError


def test_multiple_errors_are_kept() -> None:
    body = json.dumps({"Fault": {"type": "ValidationFault", "Error": [
        {"Message": "a", "Detail": "first", "code": "2050", "element": "firstname"},
        {"Message": "b", "Detail": "second", "code": "2050", "element": "postalcode"}]}})
    error = error_from_response(400, body)
    assert error.element == "firstname"
    assert [e.element for e in error.errors] == ["firstname", "postalcode"]


def test_secrets_are_redacted_from_fault_text() -> None:
    body = _fault("3200", "Token expired: SECRET-TOKEN-123", "Bearer abc.def-ghi rejected")
    error = error_from_response(401, body, secrets=["SECRET-TOKEN-123"])
    assert "SECRET-TOKEN-123" not in str(error) + repr(error)
    assert "abc.def-ghi" not in str(error)
    assert redact("x SECRET y", ["SECRET"]) == "x [redacted] y"


def test_error_from_fault_without_errors() -> None:
    error = error_from_fault("SystemFault", [], status=500)
    assert type(error) is TransientError
    assert "500" in error.message


def test_redact_catches_truncated_secret_prefixes() -> None:
    secret = "eyJCANARYabcdefghijklmnopqrstuvwxyz0123456789"
    text = f"Token expired: {secret[:20]}... and again {secret}"
    cleaned = redact(text, [secret])
    assert cleaned == "Token expired: [redacted]... and again [redacted]"
    assert redact("short abc", ["abc"]) == "short abc"  # under 4 chars: not treated as a secret
    assert redact("key abcd here", ["abcd"]) == "key [redacted] here"
