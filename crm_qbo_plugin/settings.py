"""CRM_QBO_* settings, validated once at start-up.

A missing or malformed setting stops start-up with a message that names the setting and says how to
fix it: a plugin that boots with a bad Fernet key or a wrong Redis URL only fails later, at 3 a.m.,
inside a worker. Values come from the Flask app's config first, then from the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from cryptography.fernet import Fernet
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates

PREFIX = "CRM_QBO_"

HOWTO: dict[str, str] = {
    "DATABASE_URL": "set it to a SQLAlchemy URL, e.g. sqlite:///crm-qbo.db or postgresql+psycopg://user:pass@host/db",
    "REDIS_URL": "set it to a Redis URL, e.g. redis://127.0.0.1:6379/0",
    "CLIENT_ID": "copy the Client ID from your app's Keys & credentials page at developer.intuit.com",
    "CLIENT_SECRET": "copy the Client Secret from your app's Keys & credentials page at developer.intuit.com",
    "REDIRECT_URI": "set it to the absolute callback URL registered with Intuit, e.g. https://crm.example.com/integrations/quickbooks/callback",
    "ENVIRONMENT": "use 'sandbox', 'production', or the URL of an OAuth discovery document",
    "API_BASE_URL": "leave it unset, or give the absolute base URL of the QuickBooks REST API",
    "WEBHOOK_VERIFIER_TOKEN": "copy the Verifier Token from your app's Webhooks page at developer.intuit.com",
    "SECRET_KEYS": "give one or more comma-separated Fernet keys (make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')",
    "HOST_SECRETS": "give comma-separated host_id=secret pairs (secrets of at least 16 characters) for hosts that post events over HTTP — host_id:tenant1|tenant2=secret binds a host to those tenants — or leave it unset",
    "POLL_SECONDS": "give the seconds between CDC polls of each company as a whole number from 30 to 86400, or leave it unset for 300",
    "METRICS_TOKEN": "give a random bearer token of at least 24 characters for Prometheus to scrape /integrations/quickbooks/metrics with (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'), or leave it unset to turn the endpoint off",
    "XERO_CLIENT_ID": "copy the Client id from your app's Configuration page at developer.xero.com, or leave it unset (no Xero)",
    "XERO_CLIENT_SECRET": "copy the Client secret from your app's Configuration page at developer.xero.com (with XERO_CLIENT_ID)",
    "XERO_BASE_URL": "leave it unset for Xero itself, or give the absolute URL of a local Xero (xero-sandbox) serving identity and API alike",
    "XERO_REDIRECT_URI": "set it to the absolute callback URL registered with your Xero app, e.g. https://crm.example.com/integrations/quickbooks/xero/callback",
    "XERO_WEBHOOK_KEY": "copy the Webhooks key from your app's Webhooks page at developer.xero.com, or leave it unset (no Xero webhooks; the poll still runs)",
    "RETENTION_DAYS": "give a whole number of days from 2 to 3650 (default 30) after which settled inbox, outbox, OAuth-state and sync-run rows are deleted",
}

QBO_API_BASES = {
    "sandbox": "https://sandbox-quickbooks.api.intuit.com",
    "production": "https://quickbooks.api.intuit.com",
}


def _is_url(value: str, schemes: tuple[str, ...]) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in schemes and bool(parsed.netloc or parsed.path)


class _SettingsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    DATABASE_URL = fields.String(required=True, validate=validate.Length(min=1))
    REDIS_URL = fields.String(required=True)
    CLIENT_ID = fields.String(required=True, validate=validate.Length(min=1))
    CLIENT_SECRET = fields.String(required=True, validate=validate.Length(min=1))
    REDIRECT_URI = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    ENVIRONMENT = fields.String(load_default="sandbox")
    API_BASE_URL = fields.Url(load_default=None, allow_none=True, require_tld=False, schemes={"http", "https"})
    WEBHOOK_VERIFIER_TOKEN = fields.String(required=True, validate=validate.Length(min=1))
    SECRET_KEYS = fields.String(required=True)
    HOST_SECRETS = fields.String(load_default="")
    # The CDC safety net: how often each connected company is polled (QuickBooks' CDC looks back 30 days).
    POLL_SECONDS = fields.Integer(load_default=300, validate=validate.Range(min=30, max=86400))
    RETENTION_DAYS = fields.Integer(load_default=30, strict=False, validate=validate.Range(min=2, max=3650))
    # The bearer token /metrics wants; unset, the endpoint answers 404.
    METRICS_TOKEN = fields.String(load_default=None, allow_none=True, validate=[
        validate.Length(min=24, max=256),
        validate.Regexp(r"^[\x21-\x7e]+$", error="must be printable ASCII without spaces"),
    ])

    # Xero (optional): the app's keys; XERO_BASE_URL points login, identity and API at a local Xero.
    XERO_CLIENT_ID = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=200))
    XERO_CLIENT_SECRET = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=500))
    XERO_REDIRECT_URI = fields.Url(load_default=None, allow_none=True, require_tld=False, schemes={"http", "https"})
    XERO_WEBHOOK_KEY = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=500))
    XERO_BASE_URL = fields.Url(load_default=None, allow_none=True, require_tld=False, schemes={"http", "https"})

    @validates("DATABASE_URL")
    def _database_url(self, value: str, **_: Any) -> None:
        if value.split(":", 1)[0].split("+", 1)[0] not in {"sqlite", "postgresql"}:
            raise ValidationError("must start with sqlite:// or postgresql://")

    @validates("REDIS_URL")
    def _redis_url(self, value: str, **_: Any) -> None:
        if not _is_url(value, ("redis", "rediss", "unix")):
            raise ValidationError("must be a redis://, rediss:// or unix:// URL")

    @validates("ENVIRONMENT")
    def _environment(self, value: str, **_: Any) -> None:
        if value.lower() not in {"sandbox", "production"} and not _is_url(value, ("http", "https")):
            raise ValidationError("must be 'sandbox', 'production' or a discovery-document URL")

    @validates("SECRET_KEYS")
    def _secret_keys(self, value: str, **_: Any) -> None:
        keys = [k.strip() for k in value.split(",") if k.strip()]
        if not keys:
            raise ValidationError("needs at least one Fernet key")
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                raise ValidationError(f"key {position} is not a valid Fernet key (32 url-safe base64 bytes)") from None

    @validates("HOST_SECRETS")
    def _host_secrets(self, value: str, **_: Any) -> None:
        _parse_host_secrets(value)

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Settings:
        hosts = _parse_host_secrets(data["HOST_SECRETS"])
        environment = data["ENVIRONMENT"]
        api_base = data["API_BASE_URL"] or QBO_API_BASES.get(environment.lower())
        if api_base is None:
            raise ValidationError(
                "required when ENVIRONMENT is a discovery-document URL", field_name="API_BASE_URL"
            )
        for needed in ("XERO_CLIENT_SECRET", "XERO_REDIRECT_URI"):
            if data["XERO_CLIENT_ID"] and not data[needed]:
                raise ValidationError("required with XERO_CLIENT_ID", field_name=needed)
        return Settings(
            database_url=data["DATABASE_URL"],
            redis_url=data["REDIS_URL"],
            client_id=data["CLIENT_ID"],
            client_secret=data["CLIENT_SECRET"],
            redirect_uri=data["REDIRECT_URI"],
            environment=environment,
            api_base_url=api_base.rstrip("/"),
            webhook_verifier_token=data["WEBHOOK_VERIFIER_TOKEN"],
            secret_keys=tuple(k.strip() for k in data["SECRET_KEYS"].split(",") if k.strip()),
            host_secrets={host: grant.secret for host, grant in hosts.items()},
            host_tenants={host: grant.tenants for host, grant in hosts.items() if grant.tenants is not None},
            retention_days=data["RETENTION_DAYS"],
            poll_seconds=data["POLL_SECONDS"],
            metrics_token=data["METRICS_TOKEN"],
            xero_client_id=data["XERO_CLIENT_ID"],
            xero_client_secret=data["XERO_CLIENT_SECRET"],
            xero_base_url=(data["XERO_BASE_URL"] or "").rstrip("/") or None,
            xero_webhook_key=data["XERO_WEBHOOK_KEY"],
            xero_redirect_uri=data["XERO_REDIRECT_URI"],
        )


@dataclass(frozen=True)
class _HostGrant:
    secret: str
    tenants: frozenset[str] | None  # None: any tenant the CRM knows


_TENANT_ID = re.compile(r"^[^\x00-\x20\x7f-\x9f|,=:]{1,64}$")


def _parse_host_secrets(value: str) -> dict[str, _HostGrant]:
    """``host_id=secret`` (the host speaks for any tenant the CRM knows) or
    ``host_id:tenant1|tenant2=secret`` (only for those tenants), comma-separated."""
    hosts: dict[str, _HostGrant] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, secret = item.partition("=")
        host, bound, tenant_list = name.partition(":")
        host, secret = host.strip(), secret.strip()
        if not sep or not host or len(secret) < 16:
            raise ValidationError("each entry must be host_id=secret with a secret of at least 16 characters")
        if host in hosts:
            raise ValidationError(f"host {host!r} is given twice")
        tenants: frozenset[str] | None = None
        if bound:
            listed = [t.strip() for t in tenant_list.split("|")]
            if not listed or not all(_TENANT_ID.match(t) for t in listed):
                raise ValidationError(f"host {host!r}: host_id:tenant1|tenant2=secret needs tenant ids of 1 to 64 "
                                      "characters without spaces, control characters or | , = :")
            tenants = frozenset(listed)
        hosts[host] = _HostGrant(secret, tenants)
    return hosts


@dataclass(frozen=True)
class Settings:
    """The plugin's validated settings. Its repr never shows a secret."""

    database_url: str
    redis_url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    environment: str
    api_base_url: str
    webhook_verifier_token: str
    secret_keys: tuple[str, ...]
    host_secrets: Mapping[str, str]
    # Hosts bound to a list of tenants (host_id:t1|t2=secret); a host not in here may post for any
    # tenant the CRM knows (CrmHost.location_profile is not None). Checked on every posted event.
    host_tenants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Settled rows (inbox, outbox, OAuth states, sync runs) older than this are pruned (store/retention.py).
    retention_days: int = 30
    poll_seconds: int = 300
    metrics_token: str | None = None  # bearer token of GET /metrics; None turns the endpoint off
    # Xero: None when the host offers no Xero; xero_base_url None means Xero itself.
    xero_client_id: str | None = None
    xero_client_secret: str | None = None
    xero_base_url: str | None = None
    xero_redirect_uri: str | None = None  # the OAuth callback registered with the Xero app
    xero_webhook_key: str | None = None  # None: Xero webhooks are refused (404); the poll still runs

    def __repr__(self) -> str:
        return (
            f"Settings(database_url={_redact_url(self.database_url)!r}, "
            f"redis_url={_redact_url(self.redis_url)!r}, environment={self.environment!r}, "
            f"api_base_url={self.api_base_url!r}, secrets=<hidden>)"
        )


def _redact_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


class SettingsError(RuntimeError):
    """Start-up refused: one line per bad setting, each naming it and saying how to fix it."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        lines = [f"{PREFIX}{name}: {problem} — {HOWTO.get(name, 'see the README')}" for name, problem in sorted(self.problems.items())]
        super().__init__("QuickBooks plugin settings are invalid:\n  " + "\n  ".join(lines))


def load_settings(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read CRM_QBO_* from `config` (the Flask config), falling back to `environ`, and validate."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name in _SettingsSchema().fields:
        key = PREFIX + name
        value = (config or {}).get(key, environ.get(key))
        if value is not None and value != "":
            raw[name] = value
    try:
        settings: Settings = _SettingsSchema().load(raw)
    except ValidationError as exc:
        problems = {}
        for name, messages in _flatten(exc.messages).items():
            problems[name] = "missing" if "Missing data for required field." in messages else "; ".join(messages)
        raise SettingsError(problems) from None
    return settings


def _flatten(messages: Any) -> dict[str, list[str]]:
    if isinstance(messages, dict):
        return {str(k): v if isinstance(v, list) else [str(v)] for k, v in messages.items()}
    return {"_schema": [str(messages)]}
