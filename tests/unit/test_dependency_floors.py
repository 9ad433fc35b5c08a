"""Dependency floors exclude releases with published advisories (issue 15, item 11), and what is
installed satisfies them (so the floors are real, not wishful)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# The first release without the advisories known for each package (see the comment in pyproject.toml).
FIXED = {
    "flask": "3.1.3",  # CVE-2026-27205
    "waitress": "3.0.1",  # CVE-2024-49768, CVE-2024-49769
    "requests": "2.33.0",  # CVE-2026-25645 (2.32.4: CVE-2024-47081)
    "cryptography": "50.0.0",  # CVE-2026-69247
    "werkzeug": "3.1.6",  # GHSA-29vq-49wr-vm6x (3.1.5: CVE-2026-21860; 3.1.4: CVE-2025-66221)
    "jinja2": "3.1.6",  # CVE-2025-27516 (3.1.5: CVE-2024-56201, CVE-2024-56326)
}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    parsed = (Requirement(line) for line in project["dependencies"])
    return {req.name.lower(): req for req in parsed}


@pytest.mark.parametrize(("name", "fixed"), sorted(FIXED.items()))
def test_the_floor_excludes_every_release_before_the_fix(name, fixed):
    req = requirements().get(name)
    assert req is not None, f"{name} is not a declared dependency"
    floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    assert floors and max(floors) >= Version(fixed), f"{req} allows releases before {fixed}"
    assert req.specifier.contains(version(name)), f"installed {name} {version(name)} does not satisfy {req}"
