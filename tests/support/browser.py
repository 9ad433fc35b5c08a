"""Debian's Chromium driven by Playwright (never a downloaded browser). A missing Chromium fails
the test with the fix, instead of skipping: `make test` installs it."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def launch_chromium(playwright: Any) -> Any:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError("Chromium is not installed: run `make test` or `apt-get install chromium`")
    return playwright.chromium.launch(
        executable_path=executable,
        headless=True,
        args=CHROMIUM_FLAGS,  # Playwright gives every launch a fresh, empty profile
    )
