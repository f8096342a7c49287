"""Which ASGI server costs less per answer: uvicorn vs Granian on the same app.

    python -m benchmarks.servers            # needs wrk; Granian's row needs `pip install granian`

Serves the bare pass-through (``benchmarks.bare``) under uvicorn (uvloop, httptools) and
under Granian (ASGI, uvloop), one worker each, in front of the benchmark's upstream, and
loads them alternately with wrk at 16 connections: answers per second and CPU per answer
of each server's process tree, side by side in one run. Granian is not a dependency:
this is how the choice of uvicorn was checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import `benchmarks` from the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.bench import CHAT_PATH, chat_body
from benchmarks.cpu import cpu_seconds
from benchmarks.load import Target, wrk_load, wrk_path
from benchmarks.processes import ROOT, Services, free_port, sigterm_as_exit

ROUNDS = 2
SECONDS = 8.0


def _granian(port: int, upstream_port: int) -> subprocess.Popen[bytes] | None:
    binary = shutil.which("granian") or str(Path(sys.executable).with_name("granian"))
    if not os.access(binary, os.X_OK):
        return None
    env = {
        **os.environ,
        "UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}",
        "PYTHONPATH": str(ROOT),
    }
    command = [binary, "--interface", "asgi", "--loop", "uvloop", "--workers", "1",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--no-ws", "--backlog", "4096",
               "--factory", "benchmarks.bare:from_environment"]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603 - granian with our arguments
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(4.0)  # it listens once its worker imported the app
    return process


def main() -> int:
    if wrk_path() is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="dynaseal-servers-"))
    granian: subprocess.Popen[bytes] | None = None
    try:
        with sigterm_as_exit(), Services(workdir) as services:
            upstream, uvicorn, granian_port = free_port(), free_port(), free_port()
            started = services.start({
                "upstream": (upstream, {}),
                "bare": (uvicorn, {"upstream_url": f"http://127.0.0.1:{upstream}"}),
            })  # fmt: skip
            servers = [("uvicorn", uvicorn, started["bare"].pid)]
            granian = _granian(granian_port, upstream)
            if granian is None:
                print("granian is not installed: its row is skipped (pip install granian)")
            else:
                servers.append(("granian", granian_port, granian.pid))
            for _ in range(ROUNDS):
                for name, port, pid in servers:
                    target = Target(port, CHAT_PATH, chat_body(), ("none",))
                    wrk_load(target, 16, 2, workdir)  # warm-up
                    before = cpu_seconds(pid)
                    result = wrk_load(target, 16, SECONDS, workdir)
                    cpu = (cpu_seconds(pid) - before) * 1000 / max(result.answered, 1)
                    print(
                        f"{name}: {result.ok_rps:,.0f} answers/s, p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms, CPU per answer {cpu:.3f} ms, "
                        f"{result.errors} errors",
                        flush=True,
                    )
    finally:
        if granian is not None:
            granian.terminate()
            granian.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
