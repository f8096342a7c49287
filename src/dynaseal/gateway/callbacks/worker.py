"""``dynaseal gateway worker``: callback delivery in a process of its own.

Sending callbacks is HTTP to the tenants' backends — connections, TLS, signatures,
waiting out slow receivers, retry bookkeeping. In a serving process all of that runs on
the event loop that relays the devices' streams, and shows up in their latency. The
worker takes it away: the serving processes only write the outbox (in the settlement
transaction they write anyway) and the worker polls it. Several workers may run on one
database (claims expire; ``SKIP LOCKED`` on PostgreSQL keeps them off each other's rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.startup import wait_for
from dynaseal.gateway.callbacks.delivery import DeliveryWorker
from dynaseal.gateway.callbacks.url_policy import CallbackPolicy
from dynaseal.gateway.metrics import GatewayMetrics
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import GatewaySecret
from dynaseal.storage.schema import prepare_schema

log = logging.getLogger("dynaseal.gateway.worker")

#: Set by ``dynaseal gateway`` for the worker it starts: the worker stops when that
#: process is gone (killed without a chance to stop it), rather than live on orphaned.
PARENT_VARIABLE = "DYNASEAL_WORKER_PARENT"


async def run(settings: GatewaySettings, parent_pid: int | None = None) -> None:
    """Deliver callbacks until SIGTERM / SIGINT (or the parent process is gone)."""
    db = Database(settings.database_url)
    try:
        await wait_for(
            f"the database at {db.display_url}", db.ping, within=settings.startup_timeout_seconds
        )
        # Refuses a database without the gateway's schema, or of another version.
        await prepare_schema(db, "gateway", auto_create=False)
        secret = ServerSecret(settings.secret_key)
        await secret.load(db, GatewaySecret)
        policy = CallbackPolicy(
            allow_loopback=settings.allow_loopback_callbacks,
            allow_private=settings.allow_private_callbacks,
        )
        worker = DeliveryWorker.for_settings(
            settings, db, SecretsBox(secret), policy, GatewayMetrics()
        )
        worker.start()
        log.info("delivering callbacks from %s", db.display_url)
        try:
            await _until_stopped(parent_pid)
        finally:
            await worker.stop()
    finally:
        await db.dispose()


async def _until_stopped(parent_pid: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if parent_pid is not None and os.getppid() != parent_pid:
            log.warning("the gateway that started this worker is gone: stopping")
            return


def parent_from_environment() -> int | None:
    value = os.environ.get(PARENT_VARIABLE, "")
    return int(value) if value.isdigit() else None
