"""Engines and sessions. SQLite runs in WAL mode with a busy timeout so a web process and
several workers can share one file; PostgreSQL is used as it comes."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine
from sqlmodel import Session


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: this store is what makes the plugin's promises durable. A host
            # commits its change and then our outbox row, a webhook is answered 200 once its inbox
            # row commits, a QBO write is followed by its write-ledger row. With NORMAL a power cut
            # can drop the last commits while the CRM (or Intuit) already counts on them: a lost
            # event, a lost notice QBO never redelivers, an echo mistaken for an edit. The cost is
            # one fsync per commit; the import commits once per page, so that cost is small.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def session(engine: Engine) -> Session:
    """A session that keeps loaded attributes after commit (rows are read after writing them)."""
    return Session(engine, expire_on_commit=False)


def transaction(engine: Engine) -> AbstractContextManager[DbConnection]:
    """One transaction for writes that must commit together or not at all (an inbound batch's
    links and ledger with its inbox statuses, an import page with its checkpoint and progress):
    hand the connection to the store functions that take one; committed when the block ends,
    rolled back if it raises."""
    return engine.begin()


class HasEngine(Protocol):
    """Anything holding the plugin's engine (the plugin's services): what store functions need."""

    @property
    def engine(self) -> Engine: ...
