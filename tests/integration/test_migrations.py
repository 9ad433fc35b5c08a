"""The migrations take an empty database to head, and the models and migrations do not drift."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from crm_qbo_plugin.store.db import make_engine
from crm_qbo_plugin.store.migrate import VERSION_TABLE, current_revision, upgrade
from crm_qbo_plugin.store.tables import metadata

EXPECTED_TABLES = {
    "qbo_alembic_version", "qbo_automation_run", "qbo_connection", "qbo_cursor", "qbo_inbox",
    "qbo_link", "qbo_oauth_state", "qbo_outbox", "qbo_sync_run", "qbo_write_ledger",
}


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from crm_qbo_plugin.store.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert heads
    return ",".join(sorted(heads))


def test_crm_qbo_db_upgrade_takes_an_empty_database_to_head(database_url):
    env = {**os.environ, "CRM_QBO_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "crm_qbo_plugin", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"database is at revision {head_revision()}" in done.stdout
    engine = make_engine(database_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == EXPECTED_TABLES
    finally:
        engine.dispose()
    # Running it again is a no-op.
    again = subprocess.run(
        [sys.executable, "-m", "crm_qbo_plugin", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr


def test_models_and_migrations_do_not_drift(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": VERSION_TABLE,
                    "compare_type": True,
                    "include_name": lambda name, type_, _p: type_ != "table" or bool(name and name.startswith("qbo_")),
                },
            )
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_only_qbo_tables_are_touched(database_url):
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE host_contacts (id INTEGER PRIMARY KEY, name TEXT)"))
    engine.dispose()
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    engine = make_engine(database_url)
    try:
        assert "host_contacts" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_bad_database_url_fails_with_a_clear_message():
    done = subprocess.run(
        [sys.executable, "-m", "crm_qbo_plugin", "db", "upgrade", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "Error: migration failed:" in done.stderr
    assert "Traceback" not in done.stderr


def test_0004_makes_existing_connections_quickbooks_and_fits_xero_ids(database_url):
    """A live database at 0003 keeps its connection and links; they become QuickBooks ones, and a
    Xero organisation's 36-character tenant id and record ids fit afterwards."""
    upgrade(database_url, "0003")
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO qbo_connection (tenant_id, realm_id, status, multicurrency, custom_txn_numbers, "
                "settings, created_at, updated_at) VALUES ('loc-1', '9341452215', 'connected', false, false, "
                "'{}', '2026-11-01 10:00:00', '2026-11-01 10:00:00')"))
            conn.execute(sa.text(
                "INSERT INTO qbo_link (tenant_id, kind, crm_id, qbo_id, origin, status, generation, detail, "
                "updated_at) VALUES ('loc-1', 'contact', 'c-1', '58', 'crm', 'synced', 0, '{}', "
                "'2026-11-01 10:00:00')"))
    finally:
        engine.dispose()
    upgrade(database_url)
    engine = make_engine(database_url)
    xero_tenant = "6f3d1c2e-94b7-4c57-9a5e-0f1d2c3b4a59"
    try:
        with engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT tenant_id, realm_id, provider FROM qbo_connection")).all()
            assert [tuple(r) for r in rows] == [("loc-1", "9341452215", "quickbooks")]
            assert [tuple(r) for r in conn.execute(sa.text("SELECT crm_id, qbo_id FROM qbo_link"))] == [("c-1", "58")]
            conn.execute(sa.text(
                "INSERT INTO qbo_connection (tenant_id, realm_id, pinned_realm_id, provider, status, multicurrency, "
                "custom_txn_numbers, settings, created_at, updated_at) VALUES ('loc-2', :t, :t, 'xero', 'connected', "
                "false, false, '{}', '2026-12-01 10:00:00', '2026-12-01 10:00:00')"), {"t": xero_tenant})
            conn.execute(sa.text(
                "INSERT INTO qbo_write_ledger (realm_id, entity, entity_id, sync_token, owned_hash, created_at) "
                "VALUES (:t, 'XeroInvoice', :t, '1764756000000', 'h', '2026-12-01 10:00:00')"), {"t": xero_tenant})
            kept = conn.execute(sa.text("SELECT provider, realm_id FROM qbo_connection WHERE tenant_id = 'loc-2'")).one()
            assert tuple(kept) == ("xero", xero_tenant)
    finally:
        engine.dispose()
