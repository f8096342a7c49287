"""``dynaseal gateway worker``, and the one ``dynaseal gateway`` starts beside its servers.

The serving processes then only queue callbacks (:mod:`dynaseal.gateway.callbacks.worker`
says why). The worker started here is watched: should it die, it is started again, and
it stops when the gateway does (or by itself when the gateway was killed).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from dynaseal.cli.options import DatabaseUrl

if TYPE_CHECKING:
    from dynaseal.gateway.settings import GatewaySettings

log = logging.getLogger("dynaseal")

#: How long a worker that was asked to stop may take to send its last round.
STOP_SECONDS = 15.0
#: Pause before a worker that died is started again (no tight crash loop).
RESTART_SECONDS = 2.0


def worker(
    database_url: DatabaseUrl = None,
    log_level: Annotated[
        str, typer.Option(help="Minimum level of the log lines.", case_sensitive=False)
    ] = "info",
) -> None:
    """Send the usage callbacks from the outbox, off the serving processes.

    `dynaseal gateway` starts one by default (CALLBACK_DELIVERY=worker). Run more, or run
    it on its own machine with CALLBACK_DELIVERY=external on the gateways: workers share
    the outbox in the gateway's database and never send a callback twice at once.
    """
    from dynaseal.cli.schema import database_job_or_exit
    from dynaseal.cli.settings import settings_or_exit
    from dynaseal.core.logs import configure_logging
    from dynaseal.gateway.callbacks import worker as delivery
    from dynaseal.gateway.settings import GatewaySettings

    configure_logging(log_level)
    settings = settings_or_exit(GatewaySettings, database_url=database_url)
    database_job_or_exit(
        "deliver callbacks",
        settings.database_url,
        lambda: delivery.run(settings, delivery.parent_from_environment()),
    )


def starts_worker(settings: GatewaySettings) -> bool:
    """Whether ``dynaseal gateway`` starts a delivery worker beside its servers."""
    return settings.callback_delivery in ("auto", "worker")


class WorkerProcess:
    """The delivery worker ``dynaseal gateway`` runs, restarted if it dies."""

    def __init__(self, settings: GatewaySettings, log_level: str, *, demo: bool) -> None:
        from dynaseal.gateway.callbacks.worker import PARENT_VARIABLE

        self._command = [sys.executable, "-m", "dynaseal", "gateway", "worker"]
        self._command += ["--log-level", log_level]
        self._env = os.environ | {
            "DATABASE_URL": settings.database_url,
            PARENT_VARIABLE: str(os.getpid()),
        }
        if demo:  # the demo's callbacks go to a backend on loopback
            self._env["ALLOW_LOOPBACK_CALLBACKS"] = "true"
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # stop() never misses a worker started meanwhile
        self._process: subprocess.Popen[bytes] | None = None
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._process = subprocess.Popen(self._command, env=self._env)  # noqa: S603
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            code = process.wait()
            if self._stopping.wait(RESTART_SECONDS):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                log.error("the callback delivery worker exited with %s: starting it again", code)
                self._process = subprocess.Popen(self._command, env=self._env)  # noqa: S603

    def stop(self) -> None:
        """Ask the worker to finish its round and stop; kill it if it takes too long."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
