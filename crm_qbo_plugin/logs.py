"""The log context: every record the plugin writes says which tenant and QuickBooks company it is about.

Job entry points and web requests ``bind(tenant=…, realm=…)`` what they know; code deeper down that
learns the other one (a poll finds the company of its tenant) calls ``annotate``. `install` adds
``crm_qbo_tenant`` and ``crm_qbo_realm`` to every record (``-`` outside any binding), so messages
never repeat them. The names are the plugin's own: the record factory is the host process's, and a
host logging ``extra={"tenant": …}`` must not collide with them (logging refuses to overwrite).

``QuickBooksPlugin.init_app`` installs it; a host that wants the fields printed passes its handler
with one call, ``crm_qbo_plugin.logs.install(handler)``. The ``crm-qbo`` command does so in ``main()``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

FIELDS = {"tenant": "crm_qbo_tenant", "realm": "crm_qbo_realm"}  # context key → record attribute
FORMAT = "%(asctime)s %(levelname)s %(name)s tenant=%(crm_qbo_tenant)s realm=%(crm_qbo_realm)s %(message)s"

_context: ContextVar[dict[str, str] | None] = ContextVar("crm_qbo_log_context", default=None)


def _known(tenant: object, realm: object) -> dict[str, str]:
    return {k: str(v) for k, v in (("tenant", tenant), ("realm", realm)) if v is not None}


@contextmanager
def bind(tenant: object = None, realm: object = None) -> Iterator[None]:
    """Within the block, records carry these values (None: left as it was); nests."""
    token = _context.set({**(_context.get() or {}), **_known(tenant, realm)})
    try:
        yield
    finally:
        _context.reset(token)


def open_scope(tenant: object = None, realm: object = None) -> Token[dict[str, str] | None]:
    """`bind` for code that cannot wrap a block (a web request's before/teardown hooks):
    pass the returned token to `close_scope`."""
    return _context.set({**(_context.get() or {}), **_known(tenant, realm)})


def close_scope(token: Token[dict[str, str] | None]) -> None:
    try:
        _context.reset(token)
    except ValueError:  # opened in another context (a server that switched them): just clear
        _context.set(None)


def annotate(tenant: object = None, realm: object = None) -> None:
    """Add to the innermost `bind` block what was learnt inside it (no-op outside any block)."""
    current = _context.get()
    if current is not None:
        current.update(_known(tenant, realm))


def _add_context(record: logging.LogRecord) -> None:
    bound = _context.get() or {}
    for name, attribute in FIELDS.items():
        if not hasattr(record, attribute):
            setattr(record, attribute, bound.get(name, "-"))


class ContextFilter(logging.Filter):
    """Sets ``record.crm_qbo_tenant`` and ``record.crm_qbo_realm`` from the log context, ``-`` when unknown (for
    handlers of records made before `install`, e.g. by another record factory)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _add_context(record)
        return True


def install(handler: logging.Handler | None = None) -> None:
    """Make every log record carry ``crm_qbo_tenant`` and ``crm_qbo_realm``; idempotent.

    Wraps the logging record factory, so the fields are on every record whichever handler (or
    pytest's caplog) sees it. Given a `handler`, also formats it with `FORMAT`, which prints
    ``tenant=… realm=…`` after the logger's name. `QuickBooksPlugin.init_app` calls ``install()``;
    a host adds the fields to its own format (``%(crm_qbo_tenant)s``, ``%(crm_qbo_realm)s``) or
    passes its handler."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_crm_qbo_context", False):
        def make_record(*args: object, **kwargs: object) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            _add_context(record)
            return record

        make_record._crm_qbo_context = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(make_record)
    if handler is not None:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        handler.setFormatter(logging.Formatter(FORMAT))
