"""Run real ASGI apps with uvicorn on free loopback ports, each in its own thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """A uvicorn server on <host>:<port> (127.0.0.1 unless told), started and stopped from
    sync test code. ``config`` goes to uvicorn: ``loop="asyncio"`` makes the app's name
    lookups go through ``socket.getaddrinfo``, where a test can answer them (uvloop's
    bypass it); ``ssl_certfile`` and ``ssl_keyfile`` serve https."""

    def __init__(
        self, app: Any, port: int | None = None, *, host: str = "127.0.0.1", **config: Any
    ) -> None:
        self.port = port or free_port()
        scheme = "https" if "ssl_certfile" in config else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        settings = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="on", **config
        )
        self.server = uvicorn.Server(settings)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@contextmanager
def serve(app: Any, port: int | None = None, **options: Any) -> Iterator[ServerThread]:
    server = ServerThread(app, port, **options).start()
    try:
        yield server
    finally:
        server.stop()
