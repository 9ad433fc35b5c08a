"""Locations (tenants), their users, API keys and tax rates."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select
from werkzeug.security import check_password_hash, generate_password_hash

from reference_crm.errors import Invalid
from reference_crm.models import ApiKey, Location, TaxRate, User, new_id

KEY_PREFIX = "crm_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_location(db: Session, name: str, currency: str, user: Mapping[str, Any],
                    tax_rates: Sequence[Mapping[str, Any]] = ()) -> tuple[Location, User, str, str | None]:
    """A location with its first user and an API key. Returns (location, user, api key, generated
    password or None when one was given); the key is shown once and stored only as a hash."""
    email = user["email"].strip().lower()
    if db.exec(select(User).where(User.email == email)).first() is not None:
        raise Invalid({"user.email": ["is already used by another login"]})
    location = Location(id=new_id("loc"), name=name.strip(), currency=currency.upper())
    db.add(location)
    db.flush()
    password = user.get("password")
    generated = None if password else secrets.token_urlsafe(12)
    login = User(id=new_id("usr"), location_id=location.id, email=email, name=(user.get("name") or "").strip(),
                 password_hash=generate_password_hash(password or generated or ""))
    db.add(login)
    key = issue_api_key(db, location.id)
    for rate in tax_rates:
        add_tax_rate(db, location.id, rate["name"], rate["rate_percent"])
    db.flush()
    return location, login, key, generated


def issue_api_key(db: Session, location_id: str) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiKey(location_id=location_id, key_hash=hash_key(key), prefix=key[:8]))
    return key


def location_for_key(db: Session, key: str) -> Location | None:
    row = db.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    return db.get(Location, row.location_id) if row else None


def authenticate(db: Session, email: str, password: str) -> User | None:
    user = db.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)  # same work whether or not the login exists
        return None
    return user if check_password_hash(user.password_hash, password) else None


def add_tax_rate(db: Session, location_id: str, name: str, rate_percent: Decimal) -> TaxRate:
    rate = TaxRate(id=new_id("tax"), location_id=location_id, name=name.strip(), rate_percent=rate_percent)
    db.add(rate)
    db.flush()
    return rate


def list_tax_rates(db: Session, location_id: str) -> list[TaxRate]:
    return list(db.exec(select(TaxRate).where(TaxRate.location_id == location_id).order_by(col(TaxRate.name))))


_DUMMY_HASH = generate_password_hash("not-a-real-password")
