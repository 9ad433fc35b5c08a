"""Alembic environment for the plugin: its own version table, and only qbo_ tables are compared,
so the plugin's migrations live beside the host CRM's own schema without touching it."""

from __future__ import annotations

from typing import Any

from alembic import context

from crm_qbo_plugin.store.db import make_engine
from crm_qbo_plugin.store.migrate import VERSION_TABLE
from crm_qbo_plugin.store.tables import metadata

config = context.config


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    if type_ == "table":
        return bool(name and name.startswith("qbo_"))
    return True


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            include_name=include_name,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `crm-qbo db upgrade`")
run_migrations_online()
