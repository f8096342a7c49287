"""Closed-loop load: ``wrk`` when it is installed, else the built-in asyncio generator.

Both rotate through the same pre-built requests (one per dynamic key) and report the
same :class:`LoadResult`, so the table does not depend on which one ran.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.rawhttp import Connection, build_request

_MAX_REQUESTS_PER_CONNECTION = 10_000_000
_GRACE_SECONDS = 30.0
_RESULT_MARK = "BENCH-RESULT"


@dataclass(frozen=True, slots=True)
class Target:
    """What to load: a port, a path, a JSON body, and one bearer token per request kind."""

    port: int
    path: str
    body: bytes
    tokens: tuple[str, ...]

    def requests(self) -> list[bytes]:
        return [
            build_request(
                "POST",
                self.path,
                self.port,
                {"content-type": "application/json", "authorization": f"Bearer {token}"},
                self.body,
            )
            for token in self.tokens
        ]


@dataclass(frozen=True, slots=True)
class LoadResult:
    connections: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def answered(self) -> int:
        """Requests answered with success (a refusal is quicker and cheaper than one)."""
        return self.requests - self.errors

    @property
    def ok_rps(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def wrk_path() -> str | None:
    return shutil.which("wrk")


# ---------------------------------------------------------------- async generator


async def _worker(
    port: int, requests: Sequence[bytes], offset: int, step: int, deadline: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    connection = await Connection.open(port)
    try:
        index = offset
        for _ in range(_MAX_REQUESTS_PER_CONNECTION):
            if time.perf_counter() >= deadline:
                break
            started = time.perf_counter()
            try:
                reply = await connection.exchange(requests[index % len(requests)])
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                await connection.close()
                connection = await Connection.open(port)
                continue
            latencies.append(time.perf_counter() - started)
            errors += reply.status != 200
            index += step
    finally:
        await connection.close()
    return latencies, errors


async def async_load(target: Target, connections: int, seconds: float) -> LoadResult:
    """``connections`` keep-alive connections, each sending its next request on reply."""
    requests = target.requests()
    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.timeout(seconds + _GRACE_SECONDS):
        results = await asyncio.gather(
            *(_worker(target.port, requests, k, connections, deadline) for k in range(connections))
        )
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for worker, _ in results for latency in worker)
    return LoadResult(
        connections=connections,
        requests=len(latencies),
        errors=sum(errors for _, errors in results),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )


# ---------------------------------------------------------------- wrk

_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
local tokens = {{{tokens}}}
local prepared = {{}}
local i = 0
init = function(args)
  for k, token in ipairs(tokens) do
    prepared[k] = wrk.format(nil, "{path}", {{
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
    }})
  end
end
request = function()
  i = i % #prepared + 1
  return prepared[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{mark} %.0f %.0f %.0f %.0f %.0f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def _lua_script(target: Target) -> str:
    tokens = ", ".join(f'"{token}"' for token in target.tokens)
    body = target.body.decode()
    return _LUA.format(body=body, tokens=tokens, path=target.path, mark=_RESULT_MARK)


def wrk_load(target: Target, connections: int, seconds: float, workdir: Path) -> LoadResult:
    """One wrk thread, like the issue's reference figures; percentiles from ``done()``."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    script = workdir / "bench.lua"
    script.write_text(_lua_script(target))
    duration = f"{max(1, round(seconds))}s"
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}", "-s", str(script)]
    command.append(f"http://127.0.0.1:{target.port}{target.path}")
    output = subprocess.run(  # noqa: S603 - wrk from PATH with our own arguments
        command, capture_output=True, text=True, timeout=seconds + _GRACE_SECONDS, check=True
    ).stdout
    return _parse_wrk(output, connections)


def _parse_wrk(output: str, connections: int) -> LoadResult:
    for line in output.splitlines():
        if line.startswith(_RESULT_MARK):
            requests, duration_us, p50_us, p99_us, errors = (float(v) for v in line.split()[1:])
            return LoadResult(
                connections=connections,
                requests=int(requests),
                errors=int(errors),
                seconds=duration_us / 1e6,
                p50_ms=p50_us / 1000,
                p99_ms=p99_us / 1000,
            )
    raise RuntimeError(f"no result line in wrk's output:\n{output}")
