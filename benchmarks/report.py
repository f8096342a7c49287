"""Printing the results: the machine, then one table per question the issue asks."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks import targets
from benchmarks.load import LoadResult, wrk_path
from benchmarks.phases import FlowResult, MemoryResult, StreamTimings
from benchmarks.session import SessionResult, session_table

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class LoadRow:
    """One way to the upstream under load, and the CPU its processes spent per request
    answered (ms): every process of the tree, over the run."""

    path: str  # "direct", "nginx", "bare", "gateway"
    load: LoadResult
    cpu_ms: float
    backend_cpu_ms: float | None = None  # the gateway's callbacks, received by the backend


@dataclass(frozen=True, slots=True)
class NonStreaming:
    connections: int
    rows: list[LoadRow]

    def row(self, path: str) -> LoadRow | None:
        return next((row for row in self.rows if row.path == path), None)


@dataclass(frozen=True, slots=True)
class Results:
    machine: dict[str, str]
    non_streaming: list[NonStreaming]
    streaming: dict[str, StreamTimings]  # "direct", "gateway"
    key_create: LoadResult
    memory: MemoryResult
    flows: dict[str, FlowResult]  # "relay", "dynaseal", "dynaseal_no_content"
    seconds: float
    sessions: list[SessionResult] = field(default_factory=list)  # relayed first


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def _wrk_version() -> str:
    wrk = wrk_path()
    if wrk is None:
        return ""
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return (out.stdout or out.stderr).split(" Copyright")[0].strip()


def machine(generator: str) -> dict[str, str]:
    """What a reader needs to compare a table with theirs."""
    from dynaseal import __version__

    servers = ", ".join(m for m in ("uvloop", "httptools") if find_spec(m)) or "asyncio, h11"
    load = f"wrk ({_wrk_version()}), 1 thread" if generator == "wrk" else "built-in asyncio client"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable)",
        "system": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "dynaseal": f"{__version__}, commit {_git_commit()}",
        "servers": f"uvicorn, one worker each, {servers}",
        "load generator": load,
        "command": shlex.join(sys.orig_argv),
    }


def _table(title: str, columns: Iterable[str]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def _added(gateway: float, direct: float) -> str:
    return f"{gateway - direct:+.2f} ms"


_PATHS = {
    "direct": "upstream direct",
    "nginx": "nginx proxy_pass",
    "bare": "bare Python pass-through",
    "gateway": "Dynaseal gateway",
}


def non_streaming_table(groups: list[NonStreaming]) -> Table:
    table = _table(
        "Non-streaming chat completions: direct upstream vs through the gateway",
        ["connections", "path", "answers/s", "÷ direct", "p50", "added p50", "p99", "added p99",
         "CPU / answer", "errors"],
    )  # fmt: skip
    for group in groups:
        direct = group.row("direct")
        for row in group.rows:
            d, r = direct.load if direct else row.load, row.load
            cpu = f"{row.cpu_ms:.3f} ms"
            if row.backend_cpu_ms is not None:
                cpu += f" (+{row.backend_cpu_ms:.3f} backend)"
            table.add_row(
                str(group.connections),
                _PATHS.get(row.path, row.path),
                f"{r.ok_rps:,.0f}",
                f"{r.ok_rps / d.ok_rps:.1%}" if d.ok_rps else "-",
                _ms(r.p50_ms),
                _added(r.p50_ms, d.p50_ms),
                _ms(r.p99_ms),
                _added(r.p99_ms, d.p99_ms),
                cpu,
                str(r.errors),
            )
        table.add_section()
    table.caption = (
        "answers/s: successful answers (errors: any other status or a failed connection). "
        "CPU / answer: user + system time of the path's processes (all of them) over the "
        "run ÷ successful answers; the gateway's includes delivering the run's callbacks."
    )
    return table


def streaming_table(timings: dict[str, StreamTimings]) -> Table:
    d, g = timings["direct"], timings["gateway"]
    table = _table(
        "Streaming, 1 connection (16 content chunks + usage chunk + [DONE])",
        ["", "direct p50", "gateway p50", "added p50", "direct p99", "gateway p99", "added p99"],
    )
    for label, pick50, pick99 in (
        ("time to first token", "first_p50_ms", "first_p99_ms"),
        ("time to last token", "last_p50_ms", "last_p99_ms"),
    ):
        d50, g50, d99, g99 = (
            getattr(t, a) for t, a in ((d, pick50), (g, pick50), (d, pick99), (g, pick99))
        )
        table.add_row(
            label, _ms(d50), _ms(g50), _added(g50, d50), _ms(d99), _ms(g99), _added(g99, d99)
        )
    table.caption = (
        f"streams: {d.samples} direct, {g.samples} gateway; failed: {d.errors}/{g.errors}"
    )
    return table


def key_create_table(result: LoadResult) -> Table:
    table = _table(
        "Backend /key/create: keys per second",
        ["concurrency", "keys/s", "p50", "p99", "errors"],
    )
    table.add_row(
        str(result.connections), f"{result.rps:,.0f}", _ms(result.p50_ms), _ms(result.p99_ms),
        str(result.errors),
    )  # fmt: skip
    return table


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def memory_table(memory: MemoryResult) -> Table:
    table = _table(
        f"Gateway memory with {memory.streams:,} concurrent open streams",
        ["streams open at once", "RSS before", "RSS at peak", "growth", "per stream",
         "ramp-up", "refused", "ended with [DONE]"],
    )  # fmt: skip
    per_stream = memory.growth_kib / memory.opened if memory.opened else 0
    table.add_row(
        f"{memory.opened:,} / {memory.streams:,}",
        _mib(memory.rss_before_kib),
        _mib(memory.rss_peak_kib),
        _mib(memory.growth_kib),
        f"{per_stream:.1f} KiB",
        f"{memory.ramp_seconds:.1f} s",
        f"{memory.refused:,}",
        f"{memory.completed:,}",
    )
    table.caption = f"peak from {memory.peak_source}"
    return table


_FLOW_ROWS = (
    ("relay", "(a) backend relays to the LLM", (("device", "relay"), ("LLM", "relay_upstream"))),
    ("dynaseal", "(b) Dynaseal, content in callback",
     (("key", "key_create"), ("callback", "callback"))),
    ("dynaseal_no_content", "(b) Dynaseal, no content",
     (("key", "key_create"), ("callback", "callback"))),
)  # fmt: skip


def flows_table(flows: dict[str, FlowResult]) -> Table:
    relay = flows["relay"]
    table = _table(
        f"Relaying through the backend vs Dynaseal: {relay.completions} completions, one device",
        ["way", "backend bytes / completion", "of which", "vs relay",
         "device latency p50", "device p99", "chat call p50", "errors"],
    )  # fmt: skip
    relay_bytes = relay.bytes_per_completion("relay", "relay_upstream")
    for key, label, parts in _FLOW_ROWS:
        flow = flows[key]
        size = flow.bytes_per_completion(*(bucket for _, bucket in parts))
        split = " + ".join(f"{name} {flow.bytes_per_completion(b):,.0f}" for name, b in parts)
        table.add_row(
            label,
            f"{size:,.0f} B",
            split,
            f"{size / relay_bytes - 1:+.0%}" if relay_bytes else "-",
            _ms(flow.device_p50_ms),
            _ms(flow.device_p99_ms),
            _ms(flow.chat_p50_ms),
            str(flow.errors),
        )
    table.caption = (
        "A 1.5 KB conversation and a 300-word answer. (a) counts device↔backend and "
        "backend↔LLM; (b) counts /key/create and the usage callback, one key per completion. "
        "Device latency of (b) = key + chat call."
    )
    return table


def render(console: Console, results: Results) -> None:
    console.rule("Dynaseal benchmark")
    for name, value in results.machine.items():
        console.print(f"[bold]{name}:[/bold] {escape(value)}", highlight=False)
    for table in (
        non_streaming_table(results.non_streaming),
        streaming_table(results.streaming),
        key_create_table(results.key_create),
        memory_table(results.memory),
        flows_table(results.flows),
        session_table(results.sessions),
        targets.targets_table(
            targets.lines(results.non_streaming, results.streaming, results.memory)
        ),
    ):
        console.print()
        console.print(table)
    console.print(f"\nbenchmark took {results.seconds:.0f} s", highlight=False)
