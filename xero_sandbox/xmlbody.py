"""Request bodies in XML, as pyxero sends them: ``<Invoices><Invoice>…</Invoice></Invoices>`` or a
single ``<Contact>…</Contact>``; converted to the same dicts a JSON body gives (leaf values stay
strings; the operations convert numbers, dates and booleans).
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError, XMLParser

PLURALS = frozenset({
    "Invoices", "Contacts", "Items", "Payments", "LineItems", "Addresses", "Phones",
    "ContactPersons", "ContactGroups", "Tracking", "Allocations", "ValidationErrors",
})


class XMLBodyError(ValueError):
    """A body that is not well-formed XML (or declares a DTD, which Xero refuses too)."""


def _convert(elem: Element) -> Any:
    children = list(elem)
    if elem.tag in PLURALS:
        return [_convert(child) for child in children]
    if not children:
        return (elem.text or "").strip()
    return {child.tag: _convert(child) for child in children}


def parse_xml(raw: bytes, collection: str) -> list[dict[str, Any]]:
    """The elements of a PUT/POST body for ``collection`` (e.g. ``Invoices``)."""
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise XMLBodyError("DTDs are not allowed")
    parser = XMLParser()  # noqa: S314 - DTDs refused above, so no entity expansion
    try:
        parser.feed(raw)
        root = parser.close()
    except ParseError as exc:
        raise XMLBodyError(f"The XML body is not well formed: {exc}") from None
    if root.tag == collection:
        return [_convert(child) for child in root]
    value = _convert(root)
    return [value] if isinstance(value, dict) else []
