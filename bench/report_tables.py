"""The small formatting helpers every section of bench/RESULTS.md uses."""

from __future__ import annotations

from typing import Any


def f(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ok(entry: dict[str, Any]) -> str:
    correct = entry.get("correct")
    if isinstance(correct, dict):
        return "yes" if correct.get("ok") else "**NO**"
    if entry.get("error"):
        return f"error: {str(entry['error'])[:80]}"
    return "–"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ratio(measured: Any, other: Any) -> str:
    """measured / other as "1.25×" ("–" when either is missing)."""
    if not isinstance(measured, int | float) or not isinstance(other, int | float) or not other:
        return "–"
    return f"{measured / other:.2f}×"


def ms_per(cpu_s: Any, units: Any, digits: int = 3) -> str:
    """CPU milliseconds per unit of work ("–" when either is missing)."""
    if not isinstance(cpu_s, int | float) or not units:
        return "–"
    return f"{cpu_s * 1000.0 / units:.{digits}f}"
