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
