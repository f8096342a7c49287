"""The gateway's ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dynaseal import __version__
from dynaseal.core.http import configure, include_everywhere
from dynaseal.gateway import demo_data, tenants
from dynaseal.gateway.routes import account, admin, api_keys, chat, deliveries, revocations, usage
from dynaseal.gateway.services import GatewayServices
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage.gateway_models import GatewayBase


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
        await services.db.create_all(GatewayBase.metadata)
        if settings.admin_user_password is not None:
            async with services.db.transaction() as session:
                await tenants.ensure_admin(session, settings.admin_user_password.get_secret_value())
        if demo:
            await demo_data.load_demo_tenant(
                services.db, services.box, demo_data_callback_url or demo_data.DEMO_CALLBACK_URL
            )
        services.delivery.start()
        try:
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
    configure(app, settings.cors_origins)
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

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "upstream": services.upstream.description}

    return app
