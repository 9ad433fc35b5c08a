"""Names as QBO accepts them: cleaned, cut and disambiguated the same way every time.

Everything here is deterministic, so a later lookup (or a retry after a crash) computes the very
name that was written before and finds the same record instead of creating another one.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from crm_qbo_plugin.host import Contact

MAX_DISPLAY_NAME = 100  # QBO allows 500; peers use 100 and so do we (room for disambiguation)
MAX_PERSON_PART = 100  # GivenName, FamilyName, CompanyName
MAX_ITEM_NAME = 100
MAX_EMAIL = 100
MAX_PHONE = 30
MAX_DESCRIPTION = 4000
MAX_DOC_NUMBER = 21
GENERIC_ITEM_NAME = "Sales"

_SPACES = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Typographic quotes break QBO's query lexer ("Lexical error"), so names carry plain ones.
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'})


def _is_control(char: str) -> bool:
    category = unicodedata.category(char)
    return category in ("Cc", "Cs", "Co") or (category == "Cf" and char not in "\u200d\ufe0f")


def clean_text(value: str | None) -> str:
    """NFC, plain quotes, control characters dropped (tabs and newlines become spaces), inner
    whitespace collapsed, trimmed."""
    if not value:
        return ""
    text = unicodedata.normalize("NFC", value).translate(_QUOTES)
    text = "".join(" " if char in "\t\n\r\v\f" else char for char in text if not _is_control(char) or char in "\t\n\r\v\f")
    return _SPACES.sub(" ", text).strip()


def utf16_len(text: str) -> int:
    """Length as QBO (Java) counts it: characters outside the BMP (most emoji) count twice."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """The longest prefix of `text` within `limit` UTF-16 units, trailing spaces trimmed."""
    if utf16_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > limit:
            break
        out.append(char)
        used += size
    # do not leave half of a ZWJ emoji sequence dangling
    result = "".join(out).rstrip()
    while result and result[-1] in "\u200d\ufe0f":
        result = result[:-1].rstrip()
    return result


def name_part(value: str | None, limit: int = MAX_PERSON_PART) -> str:
    """A person or company name part: cleaned, no ':' (QBO refuses it), cut to `limit`."""
    return cut(clean_text(value).replace(":", " -").replace("  ", " ").strip(), limit)


def display_name(first: str, last: str, company: str, email: str | None, fallback: str) -> str:
    """The DisplayName for a contact: "First Last", else the company, else the e-mail."""
    for candidate in (f"{first} {last}", company, email or "", fallback):
        name = name_part(candidate, MAX_DISPLAY_NAME)
        if name:
            return name
    return fallback


def stable_hash(*parts: str, length: int = 6) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def with_suffix(base: str, suffix: str, limit: int = MAX_DISPLAY_NAME) -> str:
    """`base` cut so that `base + " (" + suffix + ")"` fits in `limit`."""
    tail = f" ({suffix})"
    return cut(base, limit - utf16_len(tail)) + tail


def disambiguated_names(base: str, email: str | None, anchor: str) -> list[str]:
    """The names to try, in order, when `base` is taken (6240): with the e-mail, then with a short
    hash of `anchor` (the CRM record's identity), which no other record shares."""
    names = [base]
    tag = name_part(email, 60) if email else ""
    if tag:
        names.append(with_suffix(base, tag))
    names.append(with_suffix(base, stable_hash(anchor)))
    return list(dict.fromkeys(names))


def valid_email(value: str | None) -> str | None:
    """The address if QBO would accept it (≤ 100 characters, one @, a dot after it), else None."""
    email = clean_text(value)
    if not email or len(email) > MAX_EMAIL or not _EMAIL.match(email):
        return None
    return email


def item_name(name: str | None) -> str:
    """An Item Name: cleaned, no ':', at most 100 characters; the generic name when empty."""
    return name_part(name, MAX_ITEM_NAME) or GENERIC_ITEM_NAME


def item_key(name: str | None, sku: str | None) -> str:
    """What a CRM line's item is known by (the link's crm_id): its SKU, else its normalized name.

    Link crm_ids hold 64 characters, so long keys are replaced by a hash of themselves."""
    sku_clean = clean_text(sku)
    key = f"sku:{sku_clean}" if sku_clean else f"name:{item_name(name).casefold()}"
    if len(key) > 64:
        key = f"{key[:4]}#{hashlib.sha256(key.encode()).hexdigest()[:40]}"
    return key


def description(text: str | None) -> str:
    """A line description: control characters out (newlines kept), at most 4,000 characters."""
    if not text:
        return ""
    kept = "".join(char for char in unicodedata.normalize("NFC", text) if char == "\n" or not _is_control(char))
    return cut(kept.strip(), MAX_DESCRIPTION)


def doc_number(number: str | None) -> str | None:
    """A DocNumber (≤ 21 UTF-16 units, as every QBO limit is counted here). Longer numbers keep
    their end, where counters live."""
    text = clean_text(number)
    if not text:
        return None
    return cut(text[::-1], MAX_DOC_NUMBER)[::-1].strip() or None


def contact_name(contact: Contact) -> str:
    """The name a CRM contact goes by in the books (QBO's DisplayName, Xero's Name)."""
    return display_name(contact.first_name, contact.last_name, contact.company_name,
                        valid_email(contact.email), f"Contact {clean_text(contact.id)}")


def contact_name_candidates(tenant: str, contact: Contact) -> list[str]:
    """Names to try in order; a later one only after the books refused the earlier as taken."""
    return disambiguated_names(contact_name(contact), valid_email(contact.email), f"{tenant}/{contact.id}")
