"""The database-backed TokenStore: tokens live encrypted on the tenant's connection row."""

from __future__ import annotations

from typing import Generic, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import select

from crm_qbo_plugin.apiclient import tokens as base
from crm_qbo_plugin.crypto import UNDECRYPTABLE, TokenCipher, TokenDecryptionError
from crm_qbo_plugin.qbo.errors import ReconnectRequired
from crm_qbo_plugin.qbo.tokens import Tokens
from crm_qbo_plugin.store.db import session
from crm_qbo_plugin.store.tables import Connection, ConnectionStatus
from crm_qbo_plugin.store.types import utcnow


class TokensUnreadable(ReconnectRequired, TokenDecryptionError):
    """The stored tokens cannot be decrypted with the configured keys (CRM_QBO_SECRET_KEYS lost the
    key that wrote them). Like a refused refresh token it needs a person, never a silent retry:
    every caller that parks a tenant on ReconnectRequired parks it on this too."""

    def __init__(self) -> None:
        super().__init__(UNDECRYPTABLE, code="tokens_unreadable")


T = TypeVar("T", bound=base.Tokens)


class DbTokenStore(Generic[T]):
    """`load` re-reads the row every time: after taking the refresh lock the TokenManager must see
    what another process saved a moment ago, never a cached copy. `tokens` is the provider's token
    class (QuickBooks' by default, Xero's for a Xero connection: the row is keyed by its tenant id)."""

    def __init__(self, engine: Engine, cipher: TokenCipher, tokens: type[T] = Tokens) -> None:  # type: ignore[assignment]
        self._engine = engine
        self._cipher = cipher
        self._tokens = tokens

    def load(self, realm_key: str) -> T | None:
        with session(self._engine) as db:
            row = db.exec(select(Connection).where(Connection.realm_id == realm_key)).first()
        if row is None or row.access_token_enc is None or row.refresh_token_enc is None or row.access_expires_at is None:
            return None
        try:
            return self._tokens(
                access_token=self._cipher.decrypt(row.access_token_enc),
                refresh_token=self._cipher.decrypt(row.refresh_token_enc),
                access_expires_at=row.access_expires_at,
                refresh_expires_at=row.refresh_expires_at,
            )
        except TokenDecryptionError:
            raise TokensUnreadable() from None

    def save(self, realm_key: str, tokens: T) -> None:
        with session(self._engine) as db:
            row = db.exec(select(Connection).where(Connection.realm_id == realm_key)).first()
            if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
                return  # unlinked meanwhile: never resurrect tokens the user asked us to drop
            write_tokens(row, tokens, self._cipher)
            db.add(row)
            db.commit()


def tokens_readable(row: Connection, cipher: TokenCipher) -> bool:
    """False when the row holds tokens that no configured key can decrypt."""
    try:
        for value in (row.access_token_enc, row.refresh_token_enc):
            if value:
                cipher.decrypt(value)
    except TokenDecryptionError:
        return False
    return True


def write_tokens(row: Connection, tokens: base.Tokens, cipher: TokenCipher) -> None:
    row.access_token_enc = cipher.encrypt(tokens.access_token)
    row.refresh_token_enc = cipher.encrypt(tokens.refresh_token)
    row.access_expires_at = tokens.access_expires_at
    row.refresh_expires_at = tokens.refresh_expires_at
    row.updated_at = utcnow()


def rotate_all(engine: Engine, cipher: TokenCipher) -> int:
    """Re-encrypt every connection's tokens under the cipher's newest key, in one transaction;
    returns how many connections had tokens."""
    rotated = 0
    with session(engine) as db:
        for row in db.exec(select(Connection)):
            if row.access_token_enc is None and row.refresh_token_enc is None:
                continue
            if row.access_token_enc:
                row.access_token_enc = cipher.rotate(row.access_token_enc)
            if row.refresh_token_enc:
                row.refresh_token_enc = cipher.rotate(row.refresh_token_enc)
            db.add(row)
            rotated += 1
        db.commit()
    return rotated
