"""Start-up validation: bad settings and a bad manifest stop the plugin with the field named."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from flask import Flask

from crm_qbo_plugin import QuickBooksPlugin
from crm_qbo_plugin.manifest import MANIFEST_PATH, ManifestError, load_manifest
from crm_qbo_plugin.settings import SettingsError, load_settings
from crm_qbo_plugin.store.card_settings import CardSettings
from crm_qbo_plugin.web.api_schemas import SettingsSchema
from tests.support.fake_host import FakeHost
from tests.support.plugin_app import plugin_settings

GOOD = plugin_settings("sqlite:///x.db", "redis://127.0.0.1:6379/0")


def test_good_settings_load_and_hide_secrets():
    settings = load_settings(GOOD, environ={})
    assert settings.api_base_url == "https://sandbox-quickbooks.api.intuit.com"
    assert settings.host_secrets == {"test-host": "s3cret-for-tests-0123456789"}
    text = repr(settings)
    for secret in ("test-client-secret", "test-verifier", GOOD["CRM_QBO_SECRET_KEYS"], "s3cret"):
        assert secret not in text


def test_environment_is_the_fallback_for_app_config():
    settings = load_settings({}, environ=GOOD)
    assert settings.client_id == "test-client"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CRM_QBO_DATABASE_URL", None, "CRM_QBO_DATABASE_URL: missing — set it to a SQLAlchemy URL"),
        ("CRM_QBO_DATABASE_URL", "mysql://x/y", "CRM_QBO_DATABASE_URL: must start with sqlite:// or postgresql://"),
        ("CRM_QBO_REDIS_URL", "http://127.0.0.1", "CRM_QBO_REDIS_URL: must be a redis://"),
        ("CRM_QBO_SECRET_KEYS", "not-a-key", "CRM_QBO_SECRET_KEYS: key 1 is not a valid Fernet key"),
        ("CRM_QBO_SECRET_KEYS", Fernet.generate_key().decode() + ",short", "CRM_QBO_SECRET_KEYS: key 2 is not a valid Fernet key"),
        ("CRM_QBO_REDIRECT_URI", "not a url", "CRM_QBO_REDIRECT_URI: Not a valid URL."),
        ("CRM_QBO_ENVIRONMENT", "staging", "CRM_QBO_ENVIRONMENT: must be 'sandbox', 'production' or a discovery-document URL"),
        ("CRM_QBO_CLIENT_SECRET", None, "CRM_QBO_CLIENT_SECRET: missing"),
        ("CRM_QBO_HOST_SECRETS", "crm=short", "CRM_QBO_HOST_SECRETS: each entry must be host_id=secret"),
        ("CRM_QBO_POLL_SECONDS", "5 minutes", "CRM_QBO_POLL_SECONDS: Not a valid integer. — give the seconds between CDC polls"),
        ("CRM_QBO_POLL_SECONDS", "300.5", "CRM_QBO_POLL_SECONDS: Not a valid integer."),
        ("CRM_QBO_POLL_SECONDS", "10", "CRM_QBO_POLL_SECONDS: Must be greater than or equal to 30 and less than or equal to 86400."),
        ("CRM_QBO_POLL_SECONDS", "86401", "CRM_QBO_POLL_SECONDS: Must be greater than or equal to 30"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_setting(name, value, message):
    config = {**GOOD, name: value}
    app = Flask("bad")
    app.config.update(config)
    with pytest.raises(SettingsError) as info:
        QuickBooksPlugin(app, FakeHost())
    assert message in str(info.value)
    assert "crm_qbo" not in app.extensions


def test_the_poll_interval_defaults_to_five_minutes_and_can_be_set():
    assert load_settings(GOOD, environ={}).poll_seconds == 300
    assert load_settings(GOOD, environ={"CRM_QBO_POLL_SECONDS": "900"}).poll_seconds == 900
    assert load_settings({**GOOD, "CRM_QBO_POLL_SECONDS": 60}, environ={"CRM_QBO_POLL_SECONDS": "900"}).poll_seconds == 60


def test_a_discovery_url_environment_needs_an_api_base():
    config = {**GOOD, "CRM_QBO_ENVIRONMENT": "http://127.0.0.1:9999/.well-known/openid_configuration"}
    with pytest.raises(SettingsError, match="CRM_QBO_API_BASE_URL: required when ENVIRONMENT is a discovery-document URL"):
        load_settings(config, environ={})
    config["CRM_QBO_API_BASE_URL"] = "http://127.0.0.1:9999"
    assert load_settings(config, environ={}).api_base_url == "http://127.0.0.1:9999"


def test_a_host_is_required():
    app = Flask("nohost")
    app.config.update(GOOD)
    with pytest.raises(TypeError, match="CrmHost"):
        QuickBooksPlugin(app, object())  # type: ignore[arg-type]


def test_the_shipped_manifest_is_valid():
    manifest = load_manifest()
    assert manifest.mount_path == "/integrations/quickbooks"
    assert {"import_invoices", "review_request", "auto_sync"} <= set(manifest.defaults())
    assert "review_request" in manifest.trigger_ids()


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(MANIFEST_PATH.read_text())
    mutate(data)
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("entry_point"), "entry_point: Missing data for required field."),
        (lambda d: d.update(version="one"), "version:"),
        (lambda d: d["settings"][2].update(type="colour"), "settings.2.type: Must be one of"),
        (lambda d: d["settings"][0].update(default="yes"), "settings.0.default: must be a boolean"),
        (lambda d: d["settings"][5].update(default={"vat": 20}), "settings.5.default: must be a mapping"),
        (lambda d: d["settings"][6].update(default="1st of May"), "settings.6.default: must be a date"),
        (lambda d: d["settings"][7].update(read_only="sometimes"), "settings.7.read_only: Not a valid boolean."),
        (lambda d: d["consumes"].append("invoice.exploded"), "consumes.7: Must be one of"),
        (lambda d: d["provides_triggers"].append(dict(d["provides_triggers"][0])), "provides_triggers.5.id: duplicate id"),
        (lambda d: d.update(surprise=True), "surprise: Unknown field."),
    ],
)
def test_an_invalid_manifest_fails_with_the_field_named(tmp_path, mutate, field):
    with pytest.raises(ManifestError) as info:
        load_manifest(_write(tmp_path, mutate))
    assert field in str(info.value)


def test_the_manifest_declares_every_card_setting_the_code_reads_with_its_default():
    manifest = load_manifest()
    assert manifest.defaults() == asdict(CardSettings())
    assert {spec.key for spec in manifest.settings if spec.read_only} == {"review_request_since"}
    assert {spec.key for spec in manifest.settings if not spec.read_only} == set(SettingsSchema().load_fields)


XERO_REDIRECT = "https://crm.example.com/integrations/quickbooks/xero/callback"


def test_xero_is_optional_and_its_keys_come_in_pairs():
    assert load_settings(GOOD, environ={}).xero_client_id is None
    with_xero = load_settings({**GOOD, "CRM_QBO_XERO_CLIENT_ID": "XEROAPP", "CRM_QBO_XERO_CLIENT_SECRET": "xero-secret",
                               "CRM_QBO_XERO_REDIRECT_URI": XERO_REDIRECT,
                               "CRM_QBO_XERO_BASE_URL": "http://127.0.0.1:8766/"}, environ={})
    assert (with_xero.xero_client_id, with_xero.xero_base_url) == ("XEROAPP", "http://127.0.0.1:8766")
    assert "xero-secret" not in repr(with_xero)
    with pytest.raises(SettingsError) as refused:
        load_settings({**GOOD, "CRM_QBO_XERO_CLIENT_ID": "XEROAPP"}, environ={})
    assert refused.value.problems == {"XERO_CLIENT_SECRET": "required with XERO_CLIENT_ID"}
    with pytest.raises(SettingsError) as no_callback:
        load_settings({**GOOD, "CRM_QBO_XERO_CLIENT_ID": "XEROAPP", "CRM_QBO_XERO_CLIENT_SECRET": "s"}, environ={})
    assert no_callback.value.problems == {"XERO_REDIRECT_URI": "required with XERO_CLIENT_ID"}
    with pytest.raises(SettingsError) as bad_url:
        load_settings({**GOOD, "CRM_QBO_XERO_CLIENT_ID": "X", "CRM_QBO_XERO_CLIENT_SECRET": "s",
                       "CRM_QBO_XERO_REDIRECT_URI": XERO_REDIRECT,
                       "CRM_QBO_XERO_BASE_URL": "ftp://xero"}, environ={})
    assert set(bad_url.value.problems) == {"XERO_BASE_URL"}
