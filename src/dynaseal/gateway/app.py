"""The gateway's ASGI application."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dynaseal import __version__
from dynaseal.core.http import configure, include_everywhere
from dynaseal.core.original_demo import DEMO_CALLBACK_URL
from dynaseal.core.settings import load_settings
from dynaseal.core.startup import wait_for
from dynaseal.gateway import demo_data, health, tenants
from dynaseal.gateway.routes import account, admin, api_keys, chat, deliveries, revocations, usage
from dynaseal.gateway.services import GatewayServices
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage.schema import prepare_schema

#: Set by the CLI for worker processes, which cannot be handed ``demo=True`` directly.
DEMO_DATA_VARIABLE = "DYNASEAL_DEMO_DATA"


def create_app(
    settings: GatewaySettings,
    *,
    demo_data_callback_url: str | None = None,
    demo: bool = False,
) -> FastAPI:
    """Build the gateway. ``demo`` loads the original demo tenant (its key is public)."""
    services = GatewayServices.build(settings, allow_loopback=demo)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await _wait_for_dependencies(services)
            await prepare_schema(services.db, "gateway", auto_create=True)
            if settings.admin_user_password is not None:
                async with services.db.transaction() as session:
                    await tenants.ensure_admin(
                        session, settings.admin_user_password.get_secret_value()
                    )
            if demo:
                await demo_data.load_demo_tenant(
                    services.db, services.box, demo_data_callback_url or DEMO_CALLBACK_URL
                )
            services.start()
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
    )
    app.state.services = services
    configure(
        app,
        settings.cors_origins,
        body_limit=settings.max_body_bytes,
        body_limits={"/chat/completions": settings.max_request_bytes},
    )
    include_everywhere(
        app,
        [
            chat.router,
            account.router,
            api_keys.router,
            revocations.router,
            admin.router,
            deliveries.router,
            usage.router,
        ],
    )
    app.include_router(health.router)
    return app


async def _wait_for_dependencies(services: GatewayServices) -> None:
    within = services.settings.startup_timeout_seconds
    await wait_for(f"the database at {services.db.display_url}", services.db.ping, within=within)
    if services.redis is not None:
        await wait_for("Redis", services.redis.ping, within=within)


def create_app_from_environment() -> FastAPI:
    """The app as ``dynaseal gateway --workers N`` starts it in each worker process:
    settings from the environment, demo data when ``DYNASEAL_DEMO_DATA=1``."""
    settings = load_settings(GatewaySettings)
    return create_app(settings, demo=os.environ.get(DEMO_DATA_VARIABLE) == "1")
