"""Running an ASGI app with uvicorn on a socket we bind ourselves.

Binding first (instead of letting uvicorn do it) means a busy port is reported as
:class:`PortInUse` before anything starts, and port 0 yields the port the OS picked.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from dynaseal.core.logs import logging_config
from dynaseal.core.metrics_processes import worker_gone

#: How long a background server may take to run its startup (database, demo data).
START_TIMEOUT_SECONDS = 30.0
#: How long a worker may take to answer the supervisor's ping before it is replaced.
WORKER_HEALTHCHECK_SECONDS = 30


class PortInUse(Exception):
    """Another process listens on the requested port."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} is already in use")
        self.host = host
        self.port = port


class ServerFailed(Exception):
    """A server could not bind its address or did not finish starting."""


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (port 0 picks a free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ServerFailed(f"cannot resolve host {host!r}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise ServerFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _config(
    app: Any,
    sock: socket.socket,
    log_level: str,
    *,
    graceful_seconds: float | None = None,
    workers: int = 1,
) -> uvicorn.Config:
    host, port = sock.getsockname()[:2]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # One process: uvicorn's loggers go through the root handler configure_logging set
        # up. Workers are new processes: each applies the same set-up, or logs nothing.
        log_config=logging_config(log_level) if workers > 1 else None,
        access_log=False,  # dynaseal.core.access_log writes richer access lines
        lifespan="on",
        factory=isinstance(app, str),
        workers=workers,
        timeout_graceful_shutdown=int(graceful_seconds) if graceful_seconds else None,
        # Workers on a busy machine may take a while to import the app and answer the
        # supervisor's ping; a short timeout makes it kill and respawn healthy workers.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


def run_foreground(
    app: Any,
    sock: socket.socket,
    log_level: str,
    *,
    graceful_seconds: float | None = None,
    workers: int = 1,
) -> None:
    """Serve until Ctrl-C / SIGTERM (uvicorn handles the signals in the main thread).

    On SIGTERM the server stops accepting, lets requests in flight — streams included —
    finish for up to ``graceful_seconds``, then runs the app's shutdown. With ``workers``
    above one, ``app`` is an import string of an app factory and every worker process
    serves the same socket. Raises :class:`ServerFailed` when the service could not
    start serving, so the command exits non-zero and a supervisor restarts it.
    """
    config = _config(app, sock, log_level, graceful_seconds=graceful_seconds, workers=workers)
    with sock:
        if workers > 1:
            supervisor = _Supervisor(config, sockets=[sock])
            supervisor.run()
            # uvicorn's supervisor returns normally when a worker fails its start-up.
            if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
                raise ServerFailed("a worker could not start (see the log above)")
            return
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits this way when the app's start-up fails
            if exc.code == STARTUP_FAILURE:
                raise ServerFailed("the start-up failed (see the log above)") from None
            raise
        if not server.started:
            raise ServerFailed("the server stopped during start-up (see the log above)")


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, telling the metrics when a worker it replaced is gone: the
    dead worker's requests in flight must leave the sums."""

    def keep_subprocess_alive(self) -> None:
        self._forget_gone(super().keep_subprocess_alive)

    def restart_all(self) -> None:
        self._forget_gone(super().restart_all)

    def _forget_gone(self, replace: Callable[[], None]) -> None:
        before = {process.pid for process in self.processes}
        replace()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                worker_gone(pid)


class BackgroundServer:
    """A uvicorn server in a daemon thread, for running several services in one process."""

    def __init__(self, app: Any, sock: socket.socket, log_level: str = "warning") -> None:
        self.url = base_url(sock)
        self._sock = sock
        self._server = uvicorn.Server(_config(app, sock, log_level))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> BackgroundServer:
        """Return once the app's startup ran and the socket accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerFailed("the server stopped during startup (see the log above)")
            if time.monotonic() > deadline:
                raise ServerFailed(f"the server did not start within {timeout:.0f} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight requests and the app's shutdown finish, then release the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        self._sock.close()
