"""QBO customers → CRM contacts through the sandbox's real webhooks: create, update, inactive,
merge, email matching, out-of-order and replayed notices (B14, B15)."""

from __future__ import annotations

import pytest

from crm_qbo_plugin import Contact, Origin
from tests.support.inbound import TENANT, inbound_env


@pytest.fixture
def env(plugin_config, sandbox_url):
    with inbound_env(plugin_config, sandbox_url) as env:
        yield env


def _create_customer(env, **fields):
    body = {"DisplayName": fields.pop("DisplayName", "Ada Lovelace"), **fields}
    with env.qbo() as qbo:
        return qbo.create("Customer", body)


def test_a_new_qbo_customer_becomes_a_crm_contact_with_a_qbo_link(env):
    customer = _create_customer(env, GivenName="Ada", FamilyName="Lovelace",
                                PrimaryEmailAddr={"Address": "ada@example.com"}, PrimaryPhone={"FreeFormNumber": "555-0100"})
    env.sync()
    (link,) = env.links("contact")
    assert link["qbo_id"] == customer["Id"] and link["origin"] == "qbo" and link["sync_token"] == "0"
    contact = env.host.contacts[(TENANT, link["crm_id"])]
    assert (contact.first_name, contact.last_name, contact.email, contact.phone, contact.active, contact.origin) == (
        "Ada", "Lovelace", "ada@example.com", "555-0100", True, Origin.QBO)
    assert env.host.writes == [("contact", link["crm_id"], Origin.QBO)]
    (notice,) = env.inbox()
    assert (notice["status"], notice["entity"], notice["operation"], notice["tenant_id"]) == ("applied", "Customer", "Create", TENANT)


def test_an_edit_in_qbo_updates_the_contact_and_an_inactive_customer_is_flagged_not_deleted(env):
    customer = _create_customer(env, GivenName="Ada", FamilyName="Lovelace")
    env.sync()
    with env.qbo() as qbo:
        edited = qbo.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"],
                                         "PrimaryPhone": {"FreeFormNumber": "555-0199"}})
        qbo.update("Customer", {"Id": customer["Id"], "SyncToken": edited["SyncToken"], "Active": False})
    env.sync()
    (link,) = env.links("contact")
    contact = env.host.contacts[(TENANT, link["crm_id"])]
    assert (contact.phone, contact.active, contact.first_name) == ("555-0199", False, "Ada")
    assert len(env.host.contacts) == 1
    assert link["sync_token"] == "2"


def test_a_new_customer_whose_email_the_crm_knows_is_linked_not_duplicated(env):
    env.host.contacts[(TENANT, "c-known")] = Contact(id="c-known", email="grace@example.com", first_name="Grace")
    customer = _create_customer(env, DisplayName="Grace Hopper", PrimaryEmailAddr={"Address": "Grace@Example.com"})
    env.sync()
    (link,) = env.links("contact")
    assert (link["crm_id"], link["qbo_id"]) == ("c-known", customer["Id"])
    assert list(env.host.contacts) == [(TENANT, "c-known")]
    assert env.host.writes == []


def test_a_merge_moves_the_link_to_the_surviving_customer(env):
    kept = _create_customer(env, DisplayName="Kept Ltd", CompanyName="Kept Ltd")
    gone = _create_customer(env, DisplayName="Gone Ltd", CompanyName="Gone Ltd")
    env.sync()
    gone_link = env.link("contact", gone["Id"])
    kept_link = env.link("contact", kept["Id"])
    env.host.writes.clear()
    # The sandbox has no merge operation: QBO's notice is what the plugin acts on.
    from tests.support.webhook_posts import post_signed

    event = [{"specversion": "1.0", "id": "merge-1", "source": "intuit.test", "type": "qbo.customer.merged.v1",
              "time": "2025-12-04T15:25:05Z", "intuitentityid": kept["Id"], "intuitaccountid": env.realm,
              "data": {"deletedid": gone["Id"]}}]
    assert post_signed(env, event).status_code == 200
    env.work()
    links = env.links("contact")
    assert [(row["crm_id"], row["qbo_id"]) for row in links] == [(kept_link["crm_id"], kept["Id"])]
    assert links[0]["detail"] == {"merged_contacts": [gone_link["crm_id"]]}
    assert env.link("contact", gone["Id"]) is None


def test_out_of_order_and_replayed_notices_end_at_qbo_current_state_with_one_write_each(env):
    """B15: Update(t2) before Create(t1), an old Update(t0) last; B14: the same delivery twice."""
    customer = _create_customer(env, GivenName="Old", FamilyName="Name")
    with env.qbo() as qbo:
        qbo.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "GivenName": "New"})
    from tests.support.webhook_posts import legacy_body, post_signed

    update = legacy_body(env.realm, [("Customer", customer["Id"], "Update", "2025-01-01T10:00:02.000Z")])
    create = legacy_body(env.realm, [("Customer", customer["Id"], "Create", "2025-01-01T10:00:01.000Z")])
    stale = legacy_body(env.realm, [("Customer", customer["Id"], "Update", "2025-01-01T10:00:00.000Z")])
    for body in (update, create, stale, update):
        assert post_signed(env, body).status_code == 200
    env.work()
    (link,) = env.links("contact")
    assert env.host.contacts[(TENANT, link["crm_id"])].first_name == "New"
    assert len(env.host.writes) == 1
    notices = sorted(env.inbox(), key=lambda n: n["id"])
    assert [(n["operation"], n["status"], n["deliveries"]) for n in notices] == [
        ("Update", "applied", 2), ("Create", "skipped", 1), ("Update", "skipped", 1)]
