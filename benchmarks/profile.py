"""Where the gateway's CPU goes, per stage of a request, sampled with py-spy under load.

    python -m benchmarks.profile                  # 16 connections, 15 s, non-streaming
    python -m benchmarks.profile --stream --seconds 10

Starts the upstream, the reference backend and the gateway as the benchmark does, loads
the gateway (wrk when installed), and samples every process of the gateway with
``py-spy record --subprocesses`` from the start of the load until the callbacks it
caused are delivered. Only the thread holding the GIL is sampled: that time, stage by
stage, plus what ran outside it (SQLite's engine in its thread, the kernel) make up the
gateway's CPU. Each sample is charged to the innermost frame that belongs to a
stage (a Dynaseal module, else the library doing the work); the stage's share of the
samples times the gateway's CPU per request (``/proc``) is its cost per request. Needs
py-spy (``pip install py-spy``) and the right to trace a child process (root, or
``kernel.yama.ptrace_scope`` 0 or 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import `benchmarks` from the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.bench import (
    CHAT_PATH,
    LOAD_KEYS,
    chat_body,
    demo_tenant_token,
    mint_load_keys,
    run_async,
    wait_for_empty_outbox,
)
from benchmarks.cpu import cpu_seconds
from benchmarks.load import LoadResult, Target, async_load, wrk_load, wrk_path
from benchmarks.processes import Services, free_port, sigterm_as_exit

#: (part of a frame's file path, stage) for Dynaseal's own modules: a sample goes to the
#: innermost Dynaseal frame of its stack that matches (the first rule that matches it).
STAGES: tuple[tuple[str, str], ...] = (
    ("gateway/settlement/ledger", "ledger write"),
    ("gateway/settlement/writer", "ledger write"),
    ("gateway/settlement/", "settlement"),
    ("gateway/callbacks/outbox", "outbox"),
    ("gateway/callbacks/", "delivery"),
    ("gateway/budget/", "budget"),
    ("gateway/admission/rate_limits", "rate limit"),
    ("gateway/admission/limiters", "rate limit"),
    ("gateway/admission/concurrency", "rate limit"),
    ("gateway/admission/", "key check and body"),
    ("dynaseal/keys/", "key check and body"),
    ("gateway/endpoints/", "key check and body"),
    ("gateway/relay/", "upstream call and relay"),
    ("gateway/routing/", "upstream call and relay"),
    ("gateway/metrics", "metrics"),
    ("core/metrics", "metrics"),
    ("core/tracing", "metrics"),
    ("dynaseal/", "server and routing"),  # routes, middlewares (core/), app
)
#: Samples with no Dynaseal frame: the library at the innermost frame that matches.
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("/aiosqlite/", "database thread (aiosqlite: ledger, outbox, delivery)"),
    ("/sqlalchemy/", "database thread (aiosqlite: ledger, outbox, delivery)"),
    ("/aiohttp/", "HTTP client I/O (upstream answers, callback replies)"),
    ("/yarl/", "HTTP client I/O (upstream answers, callback replies)"),
    ("/redis/", "Redis client"),
    ("/logging/", "logging"),
    ("/starlette/", "server and routing"),
    ("/fastapi/", "server and routing"),
    ("/uvicorn/", "server and routing"),
    ("/anyio/", "server and routing"),
    ("/asyncio/", "event loop and sockets (uvloop)"),
    ("/uvloop/", "event loop and sockets (uvloop)"),
    ("/threading", "threads"),
)
OTHER = "other"
#: Samples per second; only the thread holding the GIL is sampled (``--gil``).
RATE = 200


def _file(frame: str) -> str:
    """``function (package/module.py:line)`` to ``/package/module.py``."""
    return "/" + frame[frame.rfind("(") + 1 :].rpartition(":")[0]


def _match(paths: list[str], rules: tuple[tuple[str, str], ...]) -> str | None:
    for path in paths:
        for needle, stage in rules:
            if needle in path:
                return stage
    return None


def stage_of(stack: str) -> str:
    """A collapsed stack (``frame;frame;…`` from the root) to the stage it is charged to."""
    paths = [_file(frame) for frame in reversed(stack.split(";"))]
    return _match(paths, STAGES) or _match(paths, LIBRARIES) or OTHER


def stages(raw: str) -> Counter[str]:
    """Samples per stage from py-spy's ``--format raw`` output (``stack count`` lines)."""
    found: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            found[stage_of(stack)] += int(count)
    return found


def _configs(workdir: Path) -> dict[str, tuple[int, dict[str, object]]]:
    ports = {role: free_port() for role in ("upstream", "backend", "gateway")}
    url = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    return {
        "upstream": (ports["upstream"], {}),
        "backend": (
            ports["backend"],
            {
                "database_url": f"sqlite+aiosqlite:///{workdir / 'backend.db'}",
                "gateway_url": url["gateway"],
                "key_budget_tokens": 1_000,
                "default_models": ["deepseek-chat"],
            },
        ),
        "gateway": (
            ports["gateway"],
            {
                "database_url": f"sqlite+aiosqlite:///{workdir / 'gateway.db'}",
                "upstream_url": url["upstream"],
                "callback_url": f"{url['backend']}/v1/callback/usage",
                "workers": 1,  # `dynaseal gateway`, with its delivery worker process
            },
        ),
    }


def _load(target: Target, connections: int, seconds: float, workdir: Path) -> LoadResult:
    if wrk_path():
        return wrk_load(target, connections, seconds, workdir)
    return run_async(async_load(target, connections, seconds))


def profile(
    seconds: float, connections: int, stream: bool, workdir: Path, keep: Path | None
) -> str:
    with sigterm_as_exit(), Services(workdir) as services:
        started = services.start(_configs(workdir))
        gateway, backend = started["gateway"], started["backend"]
        tokens = mint_load_keys(LOAD_KEYS)
        tenant = demo_tenant_token(gateway.url)
        target = Target(gateway.port, CHAT_PATH, chat_body(stream=stream), tokens)
        run_async(async_load(target, connections, 2.0))
        wait_for_empty_outbox(gateway.url, tenant)
        raw = workdir / "profile.raw"
        spy = subprocess.Popen(  # noqa: S603 - py-spy from PATH with our arguments
            [_py_spy(), "record", "--subprocesses", "--gil", "--nonblocking", "--format", "raw",
             "-r", str(RATE), "-o", str(raw), "-p", str(gateway.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaches
        before = cpu_seconds(gateway.pid), cpu_seconds(backend.pid)
        result = _load(target, connections, seconds, workdir)
        loaded = cpu_seconds(gateway.pid)
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        wait_for_empty_outbox(gateway.url, tenant)
        cpu = Cpu(loaded - before[0], cpu_seconds(gateway.pid) - loaded,
                  cpu_seconds(backend.pid) - before[1])  # fmt: skip
        if keep is not None:
            shutil.copy(raw, keep)
        return report(result, cpu, stages(raw.read_text()), stream)


@dataclass(frozen=True, slots=True)
class Cpu:
    """Seconds of CPU: the gateway's during the load and while it delivered the backlog
    of callbacks after it; the backend's receiving them, all along."""

    load: float
    drain: float
    backend: float


def report(result: LoadResult, cpu: Cpu, found: Counter[str], stream: bool) -> str:
    n = max(result.answered, 1)
    during = cpu.load * 1000 / n
    total = sum(found.values()) or 1
    kind = "streaming" if stream else "non-streaming"
    lines = [
        f"{kind}, {result.connections} connections: {result.ok_rps:,.0f} answers/s, "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, {result.errors} errors",
        f"gateway CPU per request: {during:.3f} ms during the load "
        f"+ {cpu.drain * 1000 / n:.3f} ms delivering its callbacks after it "
        f"(every process); the backend receiving them: {cpu.backend * 1000 / n:.3f} ms",
        "",
        "| stage (during the load) | share of samples | CPU per request |",
        "|---|---|---|",
    ]
    for stage, count in found.most_common():
        lines.append(f"| {stage} | {count / total:.1%} | {count / total * during:.3f} ms |")
    lines.append(f"| callbacks delivered after the load | | {cpu.drain * 1000 / n:.3f} ms |")
    lines.append(f"| (py-spy samples, {RATE}/s, GIL holder) | {total:,} | |")
    return "\n".join(lines)


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.access(found, os.X_OK):
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="streaming requests")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's samples here")
    args = parser.parse_args(argv)
    _py_spy()
    workdir = Path(tempfile.mkdtemp(prefix="dynaseal-profile-"))
    try:
        print(profile(args.seconds, args.connections, args.stream, workdir, args.raw))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
