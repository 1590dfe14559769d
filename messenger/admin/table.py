"""Readable text output for messenger-admin: aligned tables and UTC times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

MAX_CELL = 60


def when(seconds: float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A Unix time as UTC text; empty for None."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime(fmt)


def cell(value: Any, null: str = "", width: int = MAX_CELL) -> str:
    """One value as a single line of at most ``width`` characters."""
    if value is None:
        text = null
    elif value is True:
        text = "yes"
    elif value is False:
        text = ""
    elif isinstance(value, bytes):
        text = f"<{len(value)} bytes>"
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], null: str = "",
                 width: int = MAX_CELL) -> str:
    """Rows under upper-case headers, columns aligned, two spaces apart."""
    lines = [[header.upper() for header in headers]]
    lines += [[cell(value, null, width) for value in row] for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    return "\n".join("  ".join(text.ljust(size) for text, size in zip(line, widths,
                                                                       strict=True)).rstrip()
                     for line in lines)


def format_record(pairs: Sequence[tuple[str, Any]]) -> str:
    """``Label: value`` lines with the values aligned."""
    size = max(len(label) for label, _ in pairs) + 1
    return "\n".join(f"{(label + ':').ljust(size)} {cell(value, width=200)}".rstrip()
                     for label, value in pairs)
