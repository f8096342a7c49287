"""Gateways in processes of their own, for tests that SIGKILL, SIGTERM or replicate them.

``python gateway_process.py PORT CALLBACK_URL``: settings come from the environment
(DATABASE_URL, REDIS_URL, OPENAI_BASE_URL, CALLBACK_RETRY_SCHEDULE_SECONDS ...); the demo
tenant calls back to CALLBACK_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

_SCRIPT = Path(__file__)


def wait_until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return result


class GatewayProcesses:
    """Starts gateway processes with a shared environment; kills what is left at close."""

    def __init__(self, env: Mapping[str, str | None]) -> None:
        """``env`` on top of this process's environment; a ``None`` value unsets it."""
        merged = {**os.environ, "PYTHONPATH": str(_SCRIPT.parent.parent), **env}
        self.env = {name: value for name, value in merged.items() if value is not None}
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, port: int, callback_url: str) -> subprocess.Popen[bytes]:
        return self.wait_ready(self.spawn(port, callback_url), port)

    def spawn(self, port: int, callback_url: str) -> subprocess.Popen[bytes]:
        """Start a gateway process without waiting for it (to start several at once)."""
        process = subprocess.Popen(
            [sys.executable, str(_SCRIPT), str(port), callback_url], env=self.env
        )
        self.started.append(process)
        return process

    def wait_ready(self, process: subprocess.Popen[bytes], port: int) -> subprocess.Popen[bytes]:
        def ready() -> bool:
            assert process.poll() is None, "the gateway process died"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready)
        return process

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


def main() -> None:
    import uvicorn

    from dynaseal.gateway.app import create_app
    from dynaseal.gateway.settings import GatewaySettings

    port, callback_url = int(sys.argv[1]), sys.argv[2]
    settings = GatewaySettings()
    app = create_app(settings, demo=True, demo_data_callback_url=callback_url)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )


if __name__ == "__main__":
    main()
