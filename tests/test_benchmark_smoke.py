"""The benchmark in its seconds-long mode still runs end to end (never a speed check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

HEADINGS = (
    "Dynaseal benchmark",
    "load generator:",
    "command:",
    "Non-streaming chat completions: direct upstream vs through the gateway",
    "bare Python pass-through",
    "CPU / answer",
    "Streaming, 1 connection",
    "time to first token",
    "Backend /key/create: keys per second",
    "Gateway memory with 50 concurrent open streams",
    "Relaying through the backend vs Dynaseal",
    "Targets (issue 13)",
    "gateway CPU / request ÷ bare pass-through",
    "50 concurrent streams, default settings",
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for memory")
def test_quick_benchmark_runs_and_prints_every_table(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for heading in HEADINGS:
        assert heading in result.stdout, f"{heading!r} missing from:\n{result.stdout}"
    assert out.stat().st_size > 0
