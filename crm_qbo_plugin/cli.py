"""The ``crm-qbo`` command (also ``flask crm-qbo`` inside a host app).

Commands that run plugin work (worker, scheduler, serve) need the host CRM's Flask app, because the
host's `CrmHost` implementation lives there: name it with ``--app module:factory`` or CRM_QBO_APP.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click
from flask import Flask
from flask.cli import ScriptInfo

log = logging.getLogger("crm_qbo_plugin")


def _load_app(ctx: click.Context) -> Flask:
    info = ctx.find_object(ScriptInfo)
    app_path = (ctx.find_root().params or {}).get("app_path")
    if app_path:
        info = ScriptInfo(app_import_path=app_path)
    if info is None:
        raise click.UsageError(
            "name the host CRM app with --app module:factory (or set CRM_QBO_APP), "
            "e.g. crm-qbo --app reference_crm.app:create_app worker"
        )
    try:
        return info.load_app()
    except Exception as exc:  # a settings or manifest error: show its message, not a traceback
        raise click.ClickException(str(exc)) from None


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def _handle(signum: int, _frame: Any) -> None:
        log.info("cli.stopping signal=%s", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    return stop


@click.group("crm-qbo", context_settings={"help_option_names": ["-h", "--help"]})
def plugin_cli() -> None:
    """Two-way CRM <-> QuickBooks Online sync."""


@plugin_cli.group("db")
def db_group() -> None:
    """The plugin's database tables (all prefixed qbo_)."""


@db_group.command("upgrade")
@click.option("--database-url", envvar="CRM_QBO_DATABASE_URL", required=True,
              help="SQLAlchemy URL (default: $CRM_QBO_DATABASE_URL).")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(database_url: str, revision: str) -> None:
    """Create or migrate the plugin's tables."""
    from crm_qbo_plugin.store.migrate import current_revision, upgrade

    try:
        upgrade(database_url, revision)
    except Exception as exc:
        raise click.ClickException(f"migration failed: {exc}") from None
    click.echo(f"database is at revision {current_revision(database_url)}")


@plugin_cli.command("worker")
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
@click.pass_context
def worker(ctx: click.Context, burst: bool) -> None:
    """Run an rq worker for the plugin's queue."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from crm_qbo_plugin.state import get_state

    app = _load_app(ctx)
    with app.app_context():
        state = get_state()
        # SimpleWorker runs jobs in-process: no fork per job, one warm database pool and app.
        SimpleWorker([state.queue], connection=state.redis, serializer=JSONSerializer).work(
            burst=burst, with_scheduler=False
        )


@plugin_cli.command("scheduler")
@click.option("--lock-ttl", default=30.0, show_default=True, help="Leader lock TTL in seconds.")
@click.pass_context
def scheduler(ctx: click.Context, lock_ttl: float) -> None:
    """Run the periodic jobs; extra copies stay idle while one leads."""
    from crm_qbo_plugin.jobs.scheduler import LeaderScheduler, plugin_jobs
    from crm_qbo_plugin.state import get_state

    app = _load_app(ctx)
    state = get_state(app)
    service = LeaderScheduler(state.redis, plugin_jobs(state, app.app_context), lock_ttl=lock_ttl)
    click.echo(f"scheduler started (lock {service.lock.key}, ttl {lock_ttl:g}s)")
    service.run_forever(_stop_event())


@plugin_cli.command("rotate-keys")
@click.pass_context
def rotate_keys(ctx: click.Context) -> None:
    """Re-encrypt stored tokens under the first CRM_QBO_SECRET_KEYS key (then drop the old key)."""
    from crm_qbo_plugin.crypto import TokenDecryptionError
    from crm_qbo_plugin.onboarding.rotation import rotate_token_keys
    from crm_qbo_plugin.state import get_state

    try:
        count = rotate_token_keys(get_state(_load_app(ctx)))
    except TokenDecryptionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"re-encrypted the tokens of {count} connection(s) under the newest key")


@plugin_cli.command("reconcile")
@click.argument("tenant")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.pass_context
def reconcile_command(ctx: click.Context, tenant: str, as_json: bool) -> None:
    """Compare a location's CRM records with its books (QuickBooks or Xero); exit 0 when they match, 1 when not."""
    import json
    from dataclasses import asdict

    from crm_qbo_plugin.reconcile.run import CannotReconcile, reconcile
    from crm_qbo_plugin.state import get_state

    app = _load_app(ctx)
    try:
        with app.app_context():
            report = reconcile(get_state(app), tenant)
    except CannotReconcile as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"tenant": tenant, "company": report.company, "matches": report.matches,
                               "compared": report.result.compared,
                               "differences": [asdict(d) for d in report.result.differences],
                               "known_local_changes": [asdict(d) for d in report.result.known]}, indent=2))
    else:
        compared = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in report.result.compared.items())
        click.echo(f"{tenant} ⇄ {report.company}: compared {compared}")
        for difference in report.result.differences:
            click.echo(f"  - {difference.describe(report.books)}")
        if report.result.known:
            click.echo(f"known local changes ({len(report.result.known)}; {report.books} owns these invoices, "
                       "so CRM edits stay in the CRM):")
            for difference in report.result.known:
                click.echo(f"  - {difference.describe(report.books)}")
        known = f", apart from {len(report.result.known)} known local change(s)" if report.result.known else ""
        click.echo(f"the books match{known}" if report.matches else f"{len(report.result.differences)} difference(s)")
    ctx.exit(0 if report.matches else 1)


@plugin_cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int) -> None:
    """Serve the host app (with the plugin mounted) with waitress."""
    import waitress

    app = _load_app(ctx)
    click.echo(f"serving on http://{host}:{port}")
    waitress.serve(app, host=host, port=port, threads=threads)


@click.group("crm-qbo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--app", "app_path", envvar="CRM_QBO_APP", metavar="MODULE:FACTORY",
              help="The host CRM's Flask app or factory (default: $CRM_QBO_APP).")
def main_group(app_path: str | None) -> None:
    """Two-way CRM <-> QuickBooks Online sync."""


for _name, _command in plugin_cli.commands.items():
    main_group.add_command(_command, _name)


def main() -> None:
    from crm_qbo_plugin import logs

    logging.basicConfig(level=logging.INFO)
    logs.install(logging.getLogger().handlers[0])  # tenant= realm= on every line
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    main_group(prog_name="crm-qbo")
