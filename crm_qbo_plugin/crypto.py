"""Encryption of stored QuickBooks tokens with the CRM_QBO_SECRET_KEYS Fernet keys.

MultiFernet encrypts with the first key and decrypts with any, so keys rotate without downtime:
add the new key in front, run `crm-qbo rotate-keys`, then drop the old one. A token that no key
can decrypt fails closed with a message that says what to do, never with the ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

UNDECRYPTABLE = (
    "stored QuickBooks tokens cannot be decrypted with CRM_QBO_SECRET_KEYS: the key that "
    "encrypted them is missing or the data was altered — restore the old key (keep it after "
    "the new one) or reconnect QuickBooks"
)


class TokenDecryptionError(RuntimeError):
    """Stored tokens cannot be decrypted with the configured keys (the message is always the same:
    it never carries the ciphertext)."""

    def __init__(self, *_: object) -> None:
        super().__init__(UNDECRYPTABLE)


class TokenCipher:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is required")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, ValueError):
            raise TokenDecryptionError() from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first (newest) key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except (InvalidToken, ValueError):
            raise TokenDecryptionError() from None

    def __repr__(self) -> str:
        return "TokenCipher(<keys hidden>)"
