"""The gateway's ASGI application, and the one-time set-up it needs before serving."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from dynaseal import __version__
from dynaseal.core import tracing
from dynaseal.core.http import configure, include_everywhere
from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.settings import load_settings
from dynaseal.core.startup import create_if_absent, wait_for
from dynaseal.gateway import console, demo_data, health, shared_state, tenants
from dynaseal.gateway.device_cors import DeviceCors, is_device_path
from dynaseal.gateway.routes import (
    account,
    admin,
    api_keys,
    chat_docs,
    deliveries,
    device,
    key,
    revocations,
    usage,
)
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.gateway.services import GatewayServices
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import GatewaySecret
from dynaseal.storage.schema import prepare_schema

#: Set by the CLI for worker processes, which cannot be handed ``demo=True`` directly.
DEMO_DATA_VARIABLE = "DYNASEAL_DEMO_DATA"
#: Set by the CLI once it ran :func:`prepare` itself, before starting the workers.
PREPARED_VARIABLE = "DYNASEAL_PREPARED"


def create_app(
    settings: GatewaySettings,
    *,
    demo_data_callback_url: str | None = None,
    demo: bool = False,
    prepared: bool = False,
) -> FastAPI:
    """Build the gateway. ``demo`` loads the original demo tenant (its key is public).

    Unless ``prepared`` (the caller ran :func:`prepare`), the start-up does the one-time
    set-up itself: schema of an empty database, admin account, demo tenant.
    """
    tracing.start(settings.tracing, "dynaseal-gateway")
    services = GatewayServices.build(settings, allow_loopback=demo)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await _wait_for_dependencies(settings, services.db, services.redis)
            if not prepared:
                await _set_up(
                    settings,
                    services.db,
                    services.server_secret,
                    services.box,
                    demo,
                    demo_data_callback_url,
                )
            await services.server_secret.load(services.db, GatewaySecret)
            await services.start()
            # Start-up objects live as long as the process: keep the collector off them.
            gc.collect()
            gc.freeze()
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="Dynaseal gateway",
        version=__version__,
        summary="OpenAI-compatible gateway that enforces dynamic keys and reports usage.",
        lifespan=lifespan,
        **tracing.fastapi_options(),
    )
    app.state.services = services
    app.add_middleware(device.DirectRoutes)  # added first: innermost, inside every other
    app.add_middleware(DeviceCors)  # before configure(): inside the access log and ids
    device_bodies = settings.max_request_bytes  # chat (and legacy) completions, responses ...
    configure(
        app,
        settings.cors_origins,
        body_limit=settings.max_body_bytes,
        body_limits={path: device_bodies for path in ("/completions", "/responses", "/embeddings")},
        cors_exempt=is_device_path,
        metrics=services.metrics,
        metrics_token=settings.metrics_token,
    )
    include_everywhere(
        app,
        [
            device.router,
            key.router,
            account.router,
            api_keys.router,
            revocations.router,
            admin.router,
            deliveries.router,
            usage.router,
        ],
    )
    app.include_router(health.router)
    chat_docs.document(app)
    app.mount(console.PATH, console.create_console(services))
    return app


async def prepare(
    settings: GatewaySettings, *, demo: bool = False, demo_data_callback_url: str | None = None
) -> None:
    """The one-time set-up, run once before serving — before ``--workers`` start, so they
    never race each other for it: wait for the database (and Redis), create an empty
    database's schema or refuse an out-of-date one, create the admin account, load the
    demo tenant. Raises :class:`ConfigError` or :class:`DependencyUnavailable`."""
    db = Database(settings.database_url)
    redis = shared_state.connect(settings.redis_url) if settings.redis_url else None
    try:
        await _wait_for_dependencies(settings, db, redis)
        secret = ServerSecret(settings.secret_key)
        await _set_up(settings, db, secret, SecretsBox(secret), demo, demo_data_callback_url)
    finally:
        if redis is not None:
            await redis.aclose()
        await db.dispose()


async def _wait_for_dependencies(
    settings: GatewaySettings, db: Database, redis: Redis | None
) -> None:
    within = settings.startup_timeout_seconds
    await wait_for(f"the database at {db.display_url}", db.ping, within=within)
    if redis is not None:
        await wait_for("Redis", redis.ping, within=within)


async def _set_up(
    settings: GatewaySettings,
    db: Database,
    secret: ServerSecret,
    box: SecretsBox,
    demo: bool,
    demo_data_callback_url: str | None,
) -> None:
    # Every step tolerates another process doing the same at the same moment (replicas
    # starting together): all of it under a lock on PostgreSQL, rows by insert-if-absent.
    async with db.startup_lock("dynaseal gateway start-up"):
        await prepare_schema(db, "gateway", auto_create=True)
        await secret.load(db, GatewaySecret)  # the demo tenant's secrets are sealed with it
        admin_password = settings.admin_user_password
        if admin_password is not None:

            async def ensure_admin() -> None:
                async with db.transaction() as session:
                    await tenants.ensure_admin(session, admin_password.get_secret_value())

            await create_if_absent(ensure_admin)
        if demo:
            await create_if_absent(
                lambda: demo_data.load_demo_tenant(db, box, demo_data_callback_url)
            )


def create_app_from_environment() -> FastAPI:
    """The app as ``dynaseal gateway --workers N`` starts it in each worker process:
    settings from the environment, demo data when ``DYNASEAL_DEMO_DATA=1``, the one-time
    set-up already done by the parent when ``DYNASEAL_PREPARED=1``."""
    settings = load_settings(GatewaySettings)
    return create_app(
        settings,
        demo=os.environ.get(DEMO_DATA_VARIABLE) == "1",
        prepared=os.environ.get(PREPARED_VARIABLE) == "1",
    )
