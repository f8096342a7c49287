"""Time axes of the consoles' charts, bucketed by the database itself (SQLite and
PostgreSQL alike), so a 30-day chart reads one row per bucket, not one per request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, func
from sqlalchemy.sql import ColumnElement


@dataclass(frozen=True)
class Window:
    """``span`` seconds up to now, in buckets of ``step`` seconds (the last one is the
    current, partly elapsed bucket)."""

    name: str
    title: str
    span: int
    step: int
    tick_format: str  # strftime of the x-axis labels (UTC)
    tick_every: int  # label every n-th bucket

    @property
    def count(self) -> int:
        return self.span // self.step

    def starts(self, now: float) -> list[int]:
        """Unix start of every bucket, oldest first."""
        last = int(now) // self.step * self.step
        return [last - i * self.step for i in range(self.count - 1, -1, -1)]

    def since(self, now: float) -> datetime:
        return datetime.fromtimestamp(self.starts(now)[0], UTC)

    def tick(self, index: int, start: int) -> str:
        """The x-axis label of bucket ``index`` (most are unlabelled)."""
        if (self.count - 1 - index) % self.tick_every:
            return ""
        return datetime.fromtimestamp(start, UTC).strftime(self.tick_format)

    def bucket_label(self, start: int) -> str:
        """A bucket's full time, for its tooltip."""
        return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")


def epoch_seconds(column: Any, sqlite: bool) -> ColumnElement[int]:
    """Whole unix seconds of a ``UTCDateTime`` column."""
    if sqlite:  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


def bucket_start(column: Any, step: int, sqlite: bool) -> ColumnElement[int]:
    """The unix start of the ``step``-second bucket a time falls in."""
    return epoch_seconds(column, sqlite) // step * step
