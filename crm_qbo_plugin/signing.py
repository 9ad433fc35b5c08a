"""HMAC signing of host-event bodies, shared by the plugin's endpoint and the hosts that post to it."""

from __future__ import annotations

import hashlib
import hmac


def sign_host_event(body: bytes, secret: str) -> str:
    """The X-CRM-Signature value for `body`: ``sha256=`` + hex HMAC-SHA256 with the host's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_host_event(body: bytes, secret: str, signature: str) -> bool:
    """Constant-time check of a received signature, as bytes: a header may carry any character."""
    return hmac.compare_digest(sign_host_event(body, secret).encode(), signature.encode("utf-8", "surrogatepass"))
