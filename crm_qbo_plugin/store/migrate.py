"""Run the plugin's Alembic migrations (its own version table; only qbo_ tables)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

# Shipped inside the package (package data), so a wheel installed anywhere can create its tables.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
VERSION_TABLE = "qbo_alembic_version"


def alembic_config(database_url: str) -> Config:
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(
            f"migrations not found at {MIGRATIONS_DIR}: the installed crm-qbo-plugin is incomplete; "
            "reinstall it (pip install --force-reinstall crm-qbo-plugin)"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The database's revision; several heads (parallel branches not merged yet) joined by ','."""
    from alembic.runtime.migration import MigrationContext

    from crm_qbo_plugin.store.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
            return ",".join(sorted(heads)) or None
    finally:
        engine.dispose()
