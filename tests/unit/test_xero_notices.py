"""Xero webhook signature and event parsing (pure): good, bad and malformed input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from crm_qbo_plugin.xero.notices import (
    NoticeError,
    intent_to_receive_status,
    parse_delivery,
    signature_ok,
)

KEY = "webhook-key-123"
TENANT = "0f8e6a4d-7c2b-4b1a-9e5f-1a2b3c4d5e6f"
RESOURCE = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"


def _sign(raw: bytes, key: str = KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), raw, hashlib.sha256).digest()).decode()


def _body(*events: dict, first: int = 5, last: int = 6) -> bytes:
    return json.dumps({"events": list(events), "firstEventSequence": first,
                       "lastEventSequence": last, "entropy": "ABCDEFGHIJ"}).encode()


def _event(**extra) -> dict:
    return {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{RESOURCE}",
            "resourceId": RESOURCE, "tenantId": TENANT, "tenantType": "ORGANISATION",
            "eventCategory": "INVOICE", "eventType": "UPDATE",
            "eventDateUtc": "2026-12-02T00:44:09.923", **extra}


def test_signature_over_the_raw_bytes():
    raw = _body(_event())
    assert signature_ok(raw, _sign(raw), KEY) is True
    assert intent_to_receive_status(raw, _sign(raw), KEY) == 200
    reserialised = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert intent_to_receive_status(reserialised, _sign(raw), KEY) == 401
    assert intent_to_receive_status(raw, _sign(raw, "other"), KEY) == 401
    assert intent_to_receive_status(raw, None, KEY) == 401
    assert intent_to_receive_status(raw, "", KEY) == 401
    assert intent_to_receive_status(raw, "ünïcode", KEY) == 401
    assert intent_to_receive_status(raw, _sign(raw, ""), "") == 401  # no key configured: refuse


def test_events_parse_into_dataclasses():
    delivery = parse_delivery(_body(_event(), _event(eventCategory="CONTACT", eventType="CREATE"),
                                    _event(eventCategory="CREDITNOTE")))
    assert (delivery.first_sequence, delivery.last_sequence, delivery.ignored) == (5, 6, 1)
    first, second = delivery.events
    assert (first.category, first.event_type, first.resource_id, first.tenant_id) == (
        "INVOICE", "UPDATE", RESOURCE, TENANT)
    assert first.event_date == datetime(2026, 12, 2, 0, 44, 9, 923000, tzinfo=UTC)
    assert (second.category, second.event_type) == ("CONTACT", "CREATE")
    assert first.key != second.key and first.key == parse_delivery(_body(_event())).events[0].key
    itr = parse_delivery(_body(first=0, last=0))
    assert itr.is_intent_to_receive and itr.events == ()


@pytest.mark.parametrize(("raw", "message"), [
    (b"not json", "not JSON"),
    (b"[]", "no events list"),
    (json.dumps({"events": {}}).encode(), "no events list"),
    (_body(first=7, last=6), "whole numbers"),
    (json.dumps({"events": [], "firstEventSequence": True, "lastEventSequence": 0,
                 "entropy": "A"}).encode(), "whole numbers"),
    (json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0}).encode(),
     "entropy"),
    (_body("x"), "events[0] is not an object"),
    (_body(_event(eventType="DELETE")), "is not CREATE or UPDATE"),
    (_body(_event(eventCategory=None)), "no eventCategory"),
    (_body(_event(resourceId="42")), "resourceId is not a GUID"),
    (_body(_event(tenantId=None)), "tenantId is not a GUID"),
    (_body(_event(eventDateUtc="yesterday")), "eventDateUtc is not a date"),
    (_body(_event(eventDateUtc=17)), "no eventDateUtc"),
])
def test_bad_bodies_are_refused_with_a_clear_error(raw, message):
    with pytest.raises(NoticeError) as caught:
        parse_delivery(raw)
    assert message in str(caught.value)
