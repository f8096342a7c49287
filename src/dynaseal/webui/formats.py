"""How the consoles print numbers and times (Jinja filters). Times are UTC everywhere,
and say so: the ledger, the callbacks and the charts then line up with the logs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
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


def usd(value: Decimal | float | None) -> str:
    """Every USD amount the consoles and the CLI show: ``$0.00001177``, ``$1,234.50``.

    Exact to the 1e-10 USD the ledger counts (a request often costs less than a cent,
    so rounding to cents would show $0.00), never fewer than two decimals. A float (a
    chart's sum or axis) is taken to the nearest 1e-10 USD first."""
    if value is None:
        return "—"
    amount = value if isinstance(value, Decimal) else round(Decimal(repr(value)), 10)
    whole, _, fraction = format(abs(amount).normalize(), "f").partition(".")
    sign = "-" if amount < 0 else ""
    return f"{sign}${int(whole):,}.{fraction.ljust(2, '0')}"


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


FILTERS: dict[str, Any] = {"utc": utc, "number": number, "usd": usd, "duration": duration}
