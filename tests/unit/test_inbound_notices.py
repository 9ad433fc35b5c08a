"""Webhook bodies → notices: legacy and CloudEvents, change stamps that make replays identical,
dead letters for what cannot be applied."""

from __future__ import annotations

import json

from crm_qbo_plugin.qbo.notices import parse_webhook, unparseable


def _load(samples_dir, name):
    return json.loads((samples_dir / name).read_text())


def test_legacy_multi_entity_body(samples_dir):
    customer, vendor = parse_webhook(_load(samples_dir, "webhook-legacy-multi-entity.json"))
    assert (customer.realm_id, customer.entity, customer.entity_id, customer.operation) == ("1185883450", "Customer", "1", "Create")
    assert customer.change_stamp == "Create@2015-10-05T21:42:19.000Z" and customer.problem is None
    assert vendor.problem == "unknown QBO entity type 'Vendor'"


def test_cloudevents_merge_keeps_the_deleted_id_and_stamps_by_source_and_id(samples_dir):
    sample = _load(samples_dir, "webhook-cloudevents-customer-merged.json")
    (masked,) = parse_webhook(sample)  # the sample's realm is masked with asterisks: a dead letter
    assert masked.problem == "CloudEvent without a valid intuitaccountid"
    (merge,) = parse_webhook([{**sample[0], "intuitaccountid": "9341455"}])
    assert (merge.entity, merge.entity_id, merge.operation, merge.data) == ("Customer", "123", "Merge", {"deletedid": "27"})
    assert merge.problem is None and merge.change_stamp.startswith("ce:")


def test_cloudevent_stamps_are_stable_for_replays_and_distinct_per_event():
    event = {"specversion": "1.0", "id": "ev-1", "source": "intuit.x", "type": "qbo.invoice.updated.v1",
             "time": "2026-03-17T16:19:17Z", "intuitentityid": "150", "intuitaccountid": "9341455"}
    first, again, other = parse_webhook([event, dict(event), {**event, "id": "ev-2"}])
    assert first.key == again.key and first.key != other.key
    assert len(first.change_stamp) == 40 and first.event_id == "ev-1"
    assert (first.entity, first.operation, first.problem, first.ignored) == ("Invoice", "Update", None, None)


def test_known_but_unsynced_entities_are_ignored_and_unknown_ones_dead(samples_dir):
    (receipt,) = parse_webhook([{**_load(samples_dir, "webhook-cloudevents-salesreceipt-updated.json")[0], "intuitaccountid": "42"}])
    assert receipt.ignored == "QBO SalesReceipt changes are not synced to the CRM" and receipt.problem is None
    (employee,) = parse_webhook([{**_load(samples_dir, "webhook-cloudevents-employee-created.json")[0], "intuitaccountid": "42"}])
    assert employee.problem == "unknown QBO entity type 'qbo.employee.created.v1'"


def test_malformed_bodies_become_dead_letters_keyed_by_content():
    (bad,) = parse_webhook({"eventNotifications": "nope"})
    assert bad.problem == "legacy body without an eventNotifications list" and bad.change_stamp.startswith("bad:")
    (entry,) = parse_webhook({"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Customer"}]}}]})
    assert entry.problem == "entity entry without a valid name, id and operation" and entry.realm_id == "1"
    assert parse_webhook(7)[0].problem is not None
    assert unparseable(b"x").key == unparseable(b"x").key != unparseable(b"y").key
