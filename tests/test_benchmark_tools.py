"""The benchmark's own measuring tools: CPU time of a process tree, and the profile's
charging of samples to the stages of a request (never a speed check)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from benchmarks.cpu import cpu_seconds, tree
from benchmarks.profile import OTHER, stage_of, stages

_BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
_PARENT = (
    "import subprocess, sys, time\n"
    f"subprocess.run([sys.executable, '-c', {_BURN!r}])\n"  # a reaped child's time
    f"child = subprocess.Popen([sys.executable, '-c', {_BURN!r} + 'time.sleep(30)'])\n"
    "time.sleep(30)\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_seconds_counts_the_whole_tree_including_reaped_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and cpu_seconds(parent.pid) < 0.6:
            time.sleep(0.05)
        assert len(list(tree(parent.pid))) == 2  # the live child is found
        assert cpu_seconds(parent.pid) >= 0.6  # the reaped child and the live one
    finally:
        for pid in list(tree(parent.pid))[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def _stack(*frames: str) -> str:
    root = 'process 1:"python -m benchmarks.serve gateway"'
    return ";".join((root, "Runner.run (asyncio/runners.py:118)", *frames))


def test_a_sample_goes_to_the_innermost_stage_of_the_request() -> None:
    route = "relay (dynaseal/gateway/routes/device.py:50)"
    admit = "Gatekeeper.admit (dynaseal/gateway/admission/gatekeeper.py:190)"
    book = "book_settled (dynaseal/gateway/budget/store.py:169)"
    sqlalchemy = "Session.execute (sqlalchemy/orm/session.py:2555)"
    assert stage_of(_stack(route, admit)) == "key check and body"
    assert stage_of(_stack(route, admit, book, sqlalchemy)) == "budget"
    assert stage_of(_stack(route)) == "server and routing"
    aiosqlite = "_connection_worker_thread (aiosqlite/core.py:63)"
    assert stage_of(_stack(aiosqlite)).startswith("database thread")
    assert stage_of(_stack()) == "event loop and sockets (uvloop)"
    assert stage_of("process 1:x;main (somewhere/else.py:1)") == OTHER


def test_raw_samples_are_counted_per_stage() -> None:
    raw = "\n".join(
        [
            _stack("book_settled (dynaseal/gateway/budget/store.py:169)") + " 3",
            _stack("Gatekeeper.admit (dynaseal/gateway/admission/gatekeeper.py:1)") + " 2",
            _stack("book_settled (dynaseal/gateway/budget/store.py:170)") + " 4",
        ]
    )
    assert stages(raw) == {"budget": 7, "key check and body": 2}
