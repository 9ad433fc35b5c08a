"""Tokens never show their secrets; expiry arithmetic; the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_qbo_plugin.qbo import InMemoryTokenStore, StaticTokenSource, Tokens, TransientError
from crm_qbo_plugin.qbo.tokens import TokenStore

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def make(access: str = "ACCESS-SECRET-123", refresh: str = "REFRESH-SECRET-456", minutes: int = 60) -> Tokens:
    return Tokens(access, refresh, NOW + timedelta(minutes=minutes), NOW + timedelta(days=100))


def test_repr_and_str_hide_secrets() -> None:
    tokens = make()
    for text in (repr(tokens), str(tokens), f"{tokens}", repr([tokens]), repr({"t": tokens})):
        assert "ACCESS-SECRET" not in text and "REFRESH-SECRET" not in text
    assert "2025-01-01T13:00:00+00:00" in repr(tokens)


def test_naive_expiry_is_rejected() -> None:
    with pytest.raises(ValueError):
        Tokens("a", "r", datetime(2025, 1, 1))  # noqa: DTZ001


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        make().access_token = "x"  # type: ignore[misc]


def test_access_valid_for() -> None:
    tokens = make(minutes=10)
    assert tokens.access_valid_for(599, NOW)
    assert not tokens.access_valid_for(600, NOW)
    assert not make(minutes=-1).access_valid_for(0, NOW)


def test_from_token_response(samples_dir: object) -> None:
    payload = {"token_type": "bearer", "expires_in": 3600, "refresh_token": "R2",
               "x_refresh_token_expires_in": 8726400, "access_token": "A2"}
    tokens = Tokens.from_token_response(payload, now=NOW)
    assert tokens.access_token == "A2" and tokens.refresh_token == "R2"
    assert tokens.access_expires_at == NOW + timedelta(hours=1)
    assert tokens.refresh_expires_at == NOW + timedelta(seconds=8726400)
    kept = Tokens.from_token_response({"access_token": "A3", "expires_in": 60}, now=NOW,
                                      previous_refresh_token="R2")
    assert kept.refresh_token == "R2" and kept.refresh_expires_at is None
    with pytest.raises(TransientError):
        Tokens.from_token_response({"expires_in": 60}, now=NOW)


def test_in_memory_store_satisfies_protocol() -> None:
    store = InMemoryTokenStore()
    assert isinstance(store, TokenStore)
    assert store.load("r1") is None
    store.save("r1", make())
    assert store.load("r1") == make()
    assert store.saves == 1


def test_static_source() -> None:
    source = StaticTokenSource("abc")
    assert source.access_token() == "abc" == source.refresh_after_rejection("abc")
