"""Shared fixtures: a real Redis server, a real database (SQLite or PostgreSQL), the QBO sandbox.

The database comes from CRM_QBO_TEST_DATABASE_URL when set (``make test`` runs the suite once
against SQLite and once against PostgreSQL); otherwise each test gets a fresh SQLite file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import redis_server

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "qbo-samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real QBO payloads, kept in the repository under tests/fixtures/qbo-samples."""
    assert SAMPLES.is_dir(), f"QBO samples not found at {SAMPLES}"
    return SAMPLES


@pytest.fixture(scope="session")
def redis_session_url() -> Iterator[str]:
    url = os.environ.get("CRM_QBO_TEST_REDIS_URL")
    if url:
        yield url
        return
    with redis_server() as started:
        yield started


@pytest.fixture
def redis_url(redis_session_url: str) -> Iterator[str]:
    """A real Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_session_url)
    client.flushdb()
    yield redis_session_url
    client.close()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: a fresh SQLite file, or a fresh schema-less PostgreSQL database."""
    base = os.environ.get("CRM_QBO_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'plugin.db'}"
        return
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sandbox_app():
    """A fresh QBO sandbox Flask app (in-process, no port)."""
    from qbo_sandbox import create_app

    return create_app()


@pytest.fixture
def sandbox_url(sandbox_app) -> Iterator[str]:
    """The base URL of a fresh QBO sandbox served on a loopback port."""
    from qbo_sandbox.server import serve_in_thread

    with serve_in_thread(sandbox_app) as url:
        yield url


@pytest.fixture
def plugin_config(database_url: str, redis_url: str) -> dict:
    """CRM_QBO_* settings for a test app, on a migrated database."""
    from crm_qbo_plugin.store.migrate import upgrade
    from tests.support.plugin_app import plugin_settings

    upgrade(database_url)
    return plugin_settings(database_url, redis_url)


@pytest.fixture
def fake_host():
    from tests.support.fake_host import FakeHost

    return FakeHost()


@pytest.fixture
def plugin_app(plugin_config: dict, fake_host):
    """A host app with the plugin mounted on a migrated database and a real Redis."""
    from tests.support.plugin_app import create_app

    app = create_app(plugin_config, fake_host)
    yield app
    from crm_qbo_plugin.state import get_state

    state = get_state(app)
    state.engine.dispose()
    state.redis.close()
