"""The real ``dynaseal`` command in a subprocess, as a user runs it (``python -m dynaseal``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from support.gateway_process import wait_until

#: Settings of the developer's shell that would change what a command does.
_UNSET = (
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ROUTING_FILE",
    "DATABASE_URL",
    "REDIS_URL",
    "LOG_FORMAT",
    "COLUMNS",
)


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in _UNSET}
    environment.update(env or {})
    return environment


def run_dynaseal(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; its output and exit status."""
    return subprocess.run(
        [sys.executable, "-m", "dynaseal", *args],
        cwd=cwd,
        env=environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class Service:
    """A ``dynaseal gateway`` / ``backend`` process; its log is kept in a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log_path = log

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, url: str, timeout: float = 90) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"the service exited:\n{self.log}"
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a supervisor stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@contextmanager
def started(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[Service]:
    """``dynaseal ARGS`` running in the background until the block ends."""
    log = cwd / f"{args[0]}-{os.getpid()}-{len(list(cwd.glob('*.log')))}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "dynaseal", *args],
            cwd=cwd,
            env=environment(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    service = Service(process, log)
    try:
        yield service
    finally:
        service.stop()
