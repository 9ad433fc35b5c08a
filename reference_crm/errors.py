"""What the CRM's operations raise; the web layer turns them into 404 / 409 / 422 answers."""

from __future__ import annotations

from collections.abc import Mapping


class NotFound(LookupError):
    """No such record in this location (another location's ids are not found, by design)."""


class Conflict(RuntimeError):
    """The record's state does not allow the operation (e.g. voiding a paid invoice)."""


class Invalid(ValueError):
    """Input that cannot be accepted; `errors` maps each field name to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {name: list(messages) for name, messages in errors.items()}
        super().__init__("; ".join(f"{name}: {', '.join(m)}" for name, m in self.errors.items()))


def invalid(field: str, message: str) -> Invalid:
    return Invalid({field: [message]})
