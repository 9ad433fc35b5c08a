"""The databases a bench run measures on: SQLite (the embedded default, a file in the scratch folder)
and PostgreSQL (the production choice), started as the tests start it (`scripts/pg-test-server`).

Each workload mode gets a fresh, empty PostgreSQL database (created and dropped here), so no run
sees another's rows. The server is stopped at the end only if this run started it.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from bench.infra import ROOT, BenchError

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
ALL_DATABASES = (SQLITE, POSTGRESQL)
LABELS = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}
PG_SCRIPT = ROOT / "scripts" / "pg-test-server"
PG_PID = ROOT / ".run" / "pg" / "data" / "postmaster.pid"


class PostgresServer:
    """`scripts/pg-test-server`'s server: its admin URL, and whether this run must stop it."""

    def __init__(self) -> None:
        self.started_here = not PG_PID.exists()
        done = subprocess.run([str(PG_SCRIPT), "start"], capture_output=True, text=True, check=False, cwd=str(ROOT))  # noqa: S603
        if done.returncode != 0 or not done.stdout.strip():
            raise BenchError(f"scripts/pg-test-server could not start PostgreSQL: {done.stderr.strip()[-300:]}")
        self.admin_url = done.stdout.strip().splitlines()[-1]

    def version(self) -> str:
        engine = sa.create_engine(self.admin_url)
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.text("SHOW server_version")).scalar())
        finally:
            engine.dispose()

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A new empty database for one mode; dropped (connections forced out) afterwards."""
        name = f"bench_{secrets.token_hex(6)}"
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            yield self.admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    def close(self) -> None:
        if self.started_here:
            subprocess.run([str(PG_SCRIPT), "stop"], capture_output=True, check=False, cwd=str(ROOT))  # noqa: S603


@contextmanager
def database_url(kind: str, server: PostgresServer | None) -> Iterator[str | None]:
    """The URL a mode's stack uses: None for SQLite (the stack makes its own file), else a fresh
    PostgreSQL database."""
    if kind == SQLITE:
        yield None
        return
    if server is None:
        raise BenchError("PostgreSQL was asked for but its server is not running")
    with server.fresh_database() as url:
        yield url
