"""Bar charts as SVG drawn on the server: no JavaScript, nothing inline for the CSP to
refuse, readable by tests and screen readers (each bar has a ``<title>``).

Geometry is computed here; ``templates/charts.html`` only writes it out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dynaseal.webui.formats import number


@dataclass(frozen=True)
class Series:
    key: str  # the name of the value in each bucket
    label: str
    css: str  # colour class in console.css: s1 … s6


@dataclass(frozen=True)
class Bucket:
    label: str  # in the bars' tooltips
    values: Mapping[str, float]
    tick: str = ""  # on the x axis; empty for most buckets


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str
    value: float


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


#: Layout of every chart, in SVG user units (the SVG scales to its box).
WIDTH, HEIGHT = 640, 200
#: Room for the labels around the plot: the left one fits y labels of 9 characters
#: (``$0.000025``), so that charts one above the other line up; it widens for longer.
LEFT, RIGHT, TOP, BOTTOM = 64, 18, 8, 22
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
BASELINE = TOP + PLOT_HEIGHT
TICK_CHAR_WIDTH = 6  # of a y label's character, at the stylesheet's 10px


@dataclass(frozen=True)
class BarChart:
    id: str
    title: str
    series: Sequence[Series]
    totals: Mapping[str, float]  # per series, over every bucket
    bars: Sequence[Rect]
    y_ticks: Sequence[Tick]
    x_ticks: Sequence[Tick]
    line: Tick | None = None  # a reference level across the chart (a quota)
    fmt: Callable[[float], str] = number  # how its values are written (count, USD)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    baseline: int = BASELINE

    @property
    def legend(self) -> Sequence[Series]:
        """The series named above the chart: all of a few; of many, those drawn."""
        if len(self.series) <= 3:
            return self.series
        return [s for s in self.series if self.totals[s.key]]

    def total(self, key: str) -> str:
        """A series' total over every bucket, written as the chart writes its values."""
        return self.fmt(self.totals[key])


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (the y axis top)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value))


def stacked_bars(
    id: str,
    title: str,
    series: Sequence[Series],
    buckets: Sequence[Bucket],
    *,
    fmt: Callable[[float], str] = number,
    line: tuple[float, str] | None = None,
) -> BarChart:
    """One bar per bucket, the series stacked bottom-up in the order given; ``line``
    (value, label) draws a reference level such as a quota."""
    highest = max((sum(b.values.get(s.key, 0) for s in series) for b in buckets), default=0)
    top = nice_ceiling(max(highest, line[0] if line else 0))
    y_labels = [(BASELINE - PLOT_HEIGHT * k / 2, fmt(top * k / 2)) for k in range(3)]
    left = max(LEFT, 12 + TICK_CHAR_WIDTH * max(len(label) for _, label in y_labels))
    slot = (WIDTH - left - RIGHT) / max(len(buckets), 1)
    gap = min(2.0, slot * 0.2)
    bars: list[Rect] = []
    x_ticks: list[Tick] = []
    for i, bucket in enumerate(buckets):
        x = left + i * slot
        y = float(BASELINE)
        for s in series:
            value = bucket.values.get(s.key, 0)
            if value <= 0:
                continue
            height = value / top * PLOT_HEIGHT
            y -= height
            tooltip = f"{bucket.label}: {fmt(value)} {s.label.lower()}"
            bars.append(
                Rect(_r(x + gap / 2), _r(y), _r(slot - gap), _r(height), s.css, tooltip, value)
            )
        if bucket.tick:
            x_ticks.append(Tick(_r(x + slot / 2), bucket.tick))
    y_ticks = [Tick(_r(at), label) for at, label in y_labels]
    totals = {s.key: sum(b.values.get(s.key, 0) for b in buckets) for s in series}
    level = None
    if line is not None:
        level = Tick(_r(BASELINE - PLOT_HEIGHT * line[0] / top), f"{line[1]} {fmt(line[0])}")
    return BarChart(id, title, series, totals, bars, y_ticks, x_ticks, level, fmt, left=left)


def _r(value: float) -> float:
    return round(value, 2)
