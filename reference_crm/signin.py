"""Sign-in: the throttle on wrong passwords, server-side sessions, and where to go afterwards.

Throttle: after a few wrong passwords for one account (or many from one client address) each further
attempt must wait, twice as long each time (up to 15 minutes); while it waits, the password is not
even checked (429). Counters live in the CRM's database, so every web process shares them and the
CRM needs nothing else running. A success clears the account's counter; an hour without failures
forgets a key.

Sessions: the signed cookie carries a random token whose hash names a crm_signin_session row;
signing out deletes the row, so a copy of the old cookie no longer signs anyone in.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, delete

from reference_crm.db import utcnow
from reference_crm.models import SignInFailures, SignInSession, User

SESSION_TOKEN = "crm_session"  # the Flask session key holding the token
SESSION_LIFETIME = timedelta(days=7)

ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
MAX_WAIT = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)


# -- throttle -------------------------------------------------------------------------------------
def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode("utf-8", "surrogatepass")).hexdigest()


def _keys(email: str, address: str) -> list[tuple[str, int]]:
    return [(_key("account", email.strip().lower()), ACCOUNT_FREE_FAILURES),
            (_key("address", address), ADDRESS_FREE_FAILURES)]


def _wait(failures: int, free: int) -> timedelta:
    if failures < free:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (failures - free)), MAX_WAIT)


def retry_after(db: Session, email: str, address: str, now: datetime | None = None) -> int:
    """Seconds this account or address must still wait before its next attempt (0: go ahead)."""
    now = now or utcnow()
    longest = 0.0
    for key, free in _keys(email, address):
        row = db.get(SignInFailures, key)
        if row is None or now - row.last_failure_at > FORGET_AFTER:
            continue
        remaining = (row.last_failure_at + _wait(row.failures, free) - now).total_seconds()
        longest = max(longest, remaining)
    return int(-(-longest // 1))  # rounded up


def record_failure(db: Session, email: str, address: str) -> None:
    """Count a wrong password against the account and the address (one atomic upsert each)."""
    now = utcnow()
    table = SignInFailures.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    for key, _free in _keys(email, address):
        stale = table.c.last_failure_at < now - FORGET_AFTER
        db.execute(insert(table).values(key_hash=key, failures=1, last_failure_at=now).on_conflict_do_update(
            index_elements=[table.c.key_hash],
            set_={"failures": sa.case((stale, 1), else_=table.c.failures + 1), "last_failure_at": now}))
    db.commit()


def clear_failures(db: Session, email: str) -> None:
    account, _free = _keys(email, "")[0]
    db.execute(delete(SignInFailures).where(col(SignInFailures.key_hash) == account))


# -- sessions -------------------------------------------------------------------------------------
def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(db: Session, user: User) -> str:
    """A new server-side session for `user`; returns the token for the cookie. Also drops the
    user's expired sessions."""
    now = utcnow()
    db.execute(delete(SignInSession).where(col(SignInSession.user_id) == user.id,
                                           col(SignInSession.created_at) < now - SESSION_LIFETIME))
    token = secrets.token_urlsafe(32)
    db.add(SignInSession(token_hash=_hash(token), user_id=user.id, created_at=now))
    return token


def session_user(db: Session, token: object) -> User | None:
    """The user of a live session token, or None (unknown, signed out or expired)."""
    if not isinstance(token, str) or not token:
        return None
    row = db.get(SignInSession, _hash(token))
    if row is None or utcnow() - row.created_at > SESSION_LIFETIME:
        return None
    return db.get(User, row.user_id)


def end_session(db: Session, token: object) -> None:
    if isinstance(token, str) and token:
        db.execute(delete(SignInSession).where(col(SignInSession.token_hash) == _hash(token)))


# -- after sign-in ----------------------------------------------------------------------------------
def safe_next(target: str) -> str | None:
    """`target` when it is a path on this site, else None. Refuses any scheme or host, and any
    whitespace, control character or backslash: browsers drop some of them and read a backslash as
    a slash, so "/\\tevil.example" or "/\\\\evil.example" would leave the site."""
    if not target.startswith("/") or target.startswith("//"):
        return None
    if any(ch.isspace() or ch == "\\" or unicodedata.category(ch).startswith("C") for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
