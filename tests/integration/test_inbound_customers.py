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


def test_an_older_change_a_poll_read_before_our_push_landed_does_not_overwrite_the_crm(env):
    """A poll reads the customer as a bookkeeper left it, and our push of a later CRM edit lands in
    QuickBooks before the poll applies what it read: the CRM keeps its edit (the books hold it
    too) and the link keeps our version. Before, the CRM got the older phone and the books kept
    the CRM's: they never met again (the short soak found it)."""
    from dataclasses import replace

    from crm_qbo_plugin.inbound.apply import Applier, Target
    from crm_qbo_plugin.store.connections import connection_for
    from crm_qbo_plugin.store.db import transaction
    from tests.support.inbound import our_write

    env.host.contacts[(TENANT, "crm-1")] = Contact(id="crm-1", email="ada@example.com", first_name="Ada",
                                                   last_name="Lovelace", phone="555-0001")
    made = our_write(env, "contact", "crm-1", "Customer", lambda qbo: qbo.create("Customer", {
        "DisplayName": "Ada Lovelace", "GivenName": "Ada", "FamilyName": "Lovelace",
        "PrimaryEmailAddr": {"Address": "ada@example.com"}, "PrimaryPhone": {"FreeFormNumber": "555-0001"}}))
    env.sync()
    with env.qbo() as qbo:  # the bookkeeper's edit
        older = qbo.update("Customer", {"Id": made["Id"], "SyncToken": made["SyncToken"],
                                        "PrimaryPhone": {"FreeFormNumber": "778-0001"}})
    with env.app.app_context(), env.qbo() as qbo:
        applier = Applier(env.state, Target.of(connection_for(env.state.engine, TENANT)), qbo)
        applier.preload("Customer", [older])  # the poll has read it …
        env.host.contacts[(TENANT, "crm-1")] = replace(env.host.contacts[(TENANT, "crm-1")], phone="556-0002")
        ours = our_write(env, "contact", "crm-1", "Customer", lambda q: q.update("Customer", {  # … our push lands …
            "Id": made["Id"], "SyncToken": older["SyncToken"], "PrimaryPhone": {"FreeFormNumber": "556-0002"}}))
        outcome = applier.apply_customer(older)  # … and the poll applies what it read
        with transaction(env.state.engine) as db:
            applier.flush(db)
    assert outcome.reason == "the contact already holds this version"
    assert env.host.contacts[(TENANT, "crm-1")].phone == "556-0002"
    assert env.link("contact", made["Id"])["sync_token"] == ours["SyncToken"]

    env.sync()  # the notices of both changes: the CRM and the books agree
    assert env.host.contacts[(TENANT, "crm-1")].phone == "556-0002"
    with env.qbo() as qbo:
        assert qbo.read("Customer", made["Id"])["PrimaryPhone"]["FreeFormNumber"] == "556-0002"


def test_a_customer_our_push_has_just_made_is_left_for_the_push_to_link(env):
    """Our push of a contact has QuickBooks' answer to its create, and a poll sees the new customer
    before the push recorded it: the poll leaves it (no link, no "customer created in QuickBooks"
    automation for our own customer), and the push records its link as usual. Before, the poll
    linked it by e-mail and the push's insert of the same link failed: the soak lost a payment."""
    from crm_qbo_plugin.store.links import push_lock_key, record_write

    env.host.contacts[(TENANT, "crm-1")] = Contact(id="crm-1", email="ada@example.com", first_name="Ada")
    lock = env.state.redis.lock(push_lock_key(TENANT, "contact", "crm-1"), timeout=60)
    assert lock.acquire(blocking=False)  # a push of the contact is in flight …
    made = _create_customer(env, DisplayName="Ada", PrimaryEmailAddr={"Address": "ada@example.com"})  # … its create answered …
    env.sync()  # … and the poll sees the customer first
    assert env.links("contact") == []
    (notice,) = env.inbox()
    assert notice["status"] == "skipped" and "being pushed" in notice["reason"]
    with env.app.app_context():
        record_write(env.state, TENANT, env.realm, "contact", "crm-1", "Customer", made)
    lock.release()

    env.sync()
    (link,) = env.links("contact")
    assert (link["crm_id"], link["qbo_id"], link["origin"], link["status"]) == ("crm-1", made["Id"], "crm", "synced")
    assert env.host.triggers == [] and env.host.writes == []


def test_a_link_made_between_the_push_reading_and_inserting_it_is_updated_not_a_failed_push(env):
    """The poll can still link the customer in the instant between the push's read of the link and
    its insert (the lock was free when the poll looked): the push's record updates that link."""
    import sqlalchemy as sa

    from crm_qbo_plugin.store.links import record_write
    from crm_qbo_plugin.store.tables import Link
    from crm_qbo_plugin.store.types import utcnow

    made = _create_customer(env, DisplayName="Ada", PrimaryEmailAddr={"Address": "ada@example.com"})
    engine, links = env.state.engine, Link.__table__
    raced = []

    def poll_links_it(conn, cursor, statement, parameters, context, executemany):
        if not raced and statement.lstrip().upper().startswith("SELECT") and "qbo_link" in statement:
            raced.append(True)
            with engine.begin() as other:
                other.execute(links.insert().values(
                    tenant_id=TENANT, kind="contact", crm_id="crm-1", qbo_id=made["Id"], sync_token="0",
                    origin="qbo", owned_hash=None, status="synced", generation=0, detail={}, updated_at=utcnow()))

    sa.event.listen(engine, "after_cursor_execute", poll_links_it)
    try:
        with env.app.app_context():
            recorded = record_write(env.state, TENANT, env.realm, "contact", "crm-1", "Customer", made)
    finally:
        sa.event.remove(engine, "after_cursor_execute", poll_links_it)
    assert raced
    (link,) = env.links("contact")
    assert (link["qbo_id"], link["status"], link["owned_hash"]) == (made["Id"], "synced", recorded.owned_hash)
    assert link["owned_hash"] is not None
