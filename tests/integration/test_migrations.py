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
