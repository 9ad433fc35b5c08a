"""QuickBooks customers made inactive, end to end into the reference CRM: the contact is kept,
stored and shown as "Inactive in QuickBooks", and comes back active when QuickBooks reactivates it."""

from __future__ import annotations

from tests.support.crm_stack import crm_stack
from tests.support.reference_crm_app import new_location


def _set_active(stack, customer_id: str, active: bool) -> None:
    with stack.qbo() as qbo:
        current = qbo.read("Customer", customer_id)
        qbo.update("Customer", {"Id": customer_id, "SyncToken": current["SyncToken"], "sparse": True, "Active": active})
    stack.sync()


def test_a_customer_made_inactive_in_quickbooks_stays_in_the_crm_flagged_inactive(plugin_config, sandbox_url):
    with crm_stack(plugin_config, sandbox_url) as stack:
        with stack.qbo() as qbo:
            customer = qbo.create("Customer", {"DisplayName": "Grace Hopper", "GivenName": "Grace", "FamilyName": "Hopper",
                                               "PrimaryEmailAddr": {"Address": "grace@example.com"}})
        stack.sync()
        [contact] = stack.api("GET", "/api/contacts").json
        assert (contact["first_name"], contact["active"]) == ("Grace", True)

        _set_active(stack, customer["Id"], False)
        gone = stack.api("GET", f"/api/contacts/{contact['id']}").json
        assert (gone["first_name"], gone["last_name"], gone["email"], gone["active"]) == (
            "Grace", "Hopper", "grace@example.com", False)
        assert gone["version"] == contact["version"] + 1
        web, _token = stack.sign_in()
        assert "Inactive in QuickBooks" in web.get(f"/contacts/{contact['id']}").text

        _set_active(stack, customer["Id"], True)
        back = stack.api("GET", f"/api/contacts/{contact['id']}").json
        assert back["active"] is True
        assert "Inactive in QuickBooks" not in web.get(f"/contacts/{contact['id']}").text


def test_active_is_read_only_in_the_crm_api(plugin_config):
    from reference_crm.app import create_app
    from tests.support.reference_crm_app import close, crm_config

    app = create_app(crm_config(plugin_config))
    try:
        client = app.test_client()
        auth = new_location(client)["auth"]
        made = client.post("/api/contacts", headers=auth, json={"first_name": "Ada", "active": False})
        assert made.status_code == 422 and "active" in str(made.json)
        assert client.get("/api/contacts", headers=auth).json == []
    finally:
        close(app)


def test_a_crm_database_made_before_the_active_column_gets_it_at_start_up(plugin_config):
    import sqlalchemy as sa

    from reference_crm.app import create_app
    from reference_crm.db import make_engine
    from tests.support.reference_crm_app import close, crm_config

    app = create_app(crm_config(plugin_config))
    client = app.test_client()
    auth = new_location(client)["auth"]
    made = client.post("/api/contacts", headers=auth, json={"first_name": "Old"}).json
    close(app)
    engine = make_engine(plugin_config["CRM_QBO_DATABASE_URL"])
    with engine.begin() as conn:  # the table as an older version made it
        conn.execute(sa.text("ALTER TABLE crm_contact DROP COLUMN active"))
    engine.dispose()
    app = create_app(crm_config(plugin_config))
    try:
        assert app.test_client().get(f"/api/contacts/{made['id']}", headers=auth).json["active"] is True
    finally:
        close(app)


def test_the_bulk_upsert_stores_active_too(plugin_config):
    from crm_qbo_plugin import Contact, Origin
    from crm_qbo_plugin.state import get_state
    from reference_crm.app import create_app
    from tests.support.reference_crm_app import close, crm_config

    app = create_app(crm_config(plugin_config))
    try:
        host = get_state(app).host
        tenant = new_location(app.test_client())["id"]
        with app.app_context():
            ids = host.upsert_contacts(tenant, [Contact(id="qbo-1-c1", email=None, first_name="Gone", active=False),
                                                Contact(id="qbo-1-c2", email=None, first_name="Here")], Origin.QBO)
            assert [host.get_contact(tenant, i).active for i in ids] == [False, True]
            host.upsert_contacts(tenant, [Contact(id="qbo-1-c1", email=None, first_name="Gone")], Origin.QBO)
            assert host.get_contact(tenant, "qbo-1-c1").active is True
    finally:
        close(app)
