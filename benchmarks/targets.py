"""The performance targets as ratio lines, computed from one run's side-by-side rows.

Each line says what was measured, the goal, and whether this run met it; a row that
could not be measured (nginx not installed) says so instead. Printed, never asserted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table

from benchmarks.phases import MemoryResult, StreamTimings

if TYPE_CHECKING:  # report renders these lines, so it imports this module
    from benchmarks.report import NonStreaming

#: The 1,000-streams goal: every stream ends with [DONE], the gateway grows at most this.
MAX_GROWTH_MIB = 100


@dataclass(frozen=True, slots=True)
class Line:
    what: str
    measured: str
    goal: str
    met: bool | None  # None: not measured


def _group(groups: list[NonStreaming], connections: int) -> NonStreaming | None:
    return next((g for g in groups if g.connections == connections), None)


def _ratio(
    groups: list[NonStreaming], connections: int, pick: Callable[[NonStreaming], float | None]
) -> float | None:
    group = _group(groups, connections)
    return None if group is None else pick(group)


def cpu_line(groups: list[NonStreaming]) -> Line:
    def ratio(group: NonStreaming) -> float | None:
        gateway, bare = group.row("gateway"), group.row("bare")
        if gateway is None or bare is None or bare.cpu_ms <= 0:
            return None
        return gateway.cpu_ms / bare.cpu_ms

    value = _ratio(groups, 16, ratio)
    measured = "-" if value is None else f"{value:.2f}x"
    return Line("gateway CPU / request ÷ bare pass-through (16 conn.)", measured, "≤ 2x",
                None if value is None else value <= 2)  # fmt: skip


def nginx_line(groups: list[NonStreaming]) -> Line:
    def ratio(group: NonStreaming) -> float | None:
        gateway, nginx = group.row("gateway"), group.row("nginx")
        if gateway is None or nginx is None or nginx.load.ok_rps <= 0:
            return None
        return gateway.load.ok_rps / nginx.load.ok_rps

    value = _ratio(groups, 16, ratio)
    what = "gateway answers/s ÷ nginx proxy_pass (16 conn.)"
    if value is None:
        return Line(what, "nginx not installed: row skipped", "≥ 0.2x", None)
    return Line(what, f"{value:.2f}x", "≥ 0.2x", value >= 0.2)


def latency_lines(groups: list[NonStreaming]) -> list[Line]:
    group = _group(groups, 1)
    direct, gateway = (None, None) if group is None else (group.row("direct"), group.row("gateway"))
    if direct is None or gateway is None:
        return []
    p50 = gateway.load.p50_ms - direct.load.p50_ms
    p99 = gateway.load.p99_ms - direct.load.p99_ms
    return [
        Line("added p50 over direct (1 conn.)", f"{p50:+.2f} ms", "≤ 0.5 ms", p50 <= 0.5),
        Line("added p99 over direct (1 conn.)", f"{p99:+.2f} ms", "≤ 2 ms", p99 <= 2),
    ]


def streaming_lines(timings: dict[str, StreamTimings]) -> list[Line]:
    direct, gateway = timings["direct"], timings["gateway"]
    p50 = gateway.first_p50_ms - direct.first_p50_ms
    p99 = gateway.first_p99_ms - direct.first_p99_ms
    return [
        Line("streaming: added time to first token p50", f"{p50:+.2f} ms", "≤ 0.5 ms", p50 <= 0.5),
        Line("streaming: added time to first token p99", f"{p99:+.2f} ms", "≤ 2 ms", p99 <= 2),
    ]


def memory_line(memory: MemoryResult) -> Line:
    growth = memory.growth_kib / 1024
    measured = f"{memory.completed:,} of {memory.streams:,} ended with [DONE], +{growth:.1f} MiB"
    met = memory.completed == memory.streams and growth <= MAX_GROWTH_MIB
    return Line(f"{memory.streams:,} concurrent streams, default settings", measured,
                f"all, ≤ {MAX_GROWTH_MIB} MiB", met)  # fmt: skip


def lines(
    groups: list[NonStreaming], timings: dict[str, StreamTimings], memory: MemoryResult
) -> list[Line]:
    return [
        cpu_line(groups),
        nginx_line(groups),
        *latency_lines(groups),
        *streaming_lines(timings),
        memory_line(memory),
    ]


def targets_table(found: list[Line]) -> Table:
    table = Table(
        title="Targets (issue 13), as ratios measured side by side in this run",
        title_justify="left",
        title_style="bold",
    )
    for index, column in enumerate(("target", "measured", "goal", "met")):
        table.add_column(column, justify="left" if index == 0 else "right")
    for line in found:
        met = "-" if line.met is None else ("yes" if line.met else "NO")
        table.add_row(line.what, line.measured, line.goal, met)
    return table
