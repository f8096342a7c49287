"""Running the ``dynaseal`` command as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_dynaseal(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess, as a user runs it (``python -m dynaseal``)."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dynaseal", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
