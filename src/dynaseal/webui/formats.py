"""How the consoles print numbers and times (Jinja filters). Times are UTC everywhere,
and say so: the ledger, the callbacks and the charts then line up with the logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup


def utc(value: datetime | None, seconds: bool = True) -> Markup:
    """``<time>2024-05-01 12:00:00</time>`` (the stylesheet keeps it on one line)."""
    if value is None:
        return Markup("—")
    value = value.astimezone(UTC)
    shown = value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d")
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), shown)


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


def duration(seconds: float | None) -> str:
    """``90`` → ``1 min 30 s``; ``7200`` → ``2 h``."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts[:2]) or "0 s"


FILTERS: dict[str, Any] = {"utc": utc, "number": number, "duration": duration}
