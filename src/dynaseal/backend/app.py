"""Assembling the backend: storage, error format, CORS and the routes under every prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dynaseal.backend import crud
from dynaseal.backend.demo_data import load_demo_data, with_demo_tenant
from dynaseal.backend.routes import api_router
from dynaseal.backend.settings import BackendSettings
from dynaseal.backend.webhooks import CallbackVerifier
from dynaseal.core.http import configure, include_everywhere
from dynaseal.core.login_throttle import LoginThrottle
from dynaseal.core.session_tokens import SessionTokens
from dynaseal.storage import Database
from dynaseal.storage.schema import prepare_schema

#: ``aud`` of the backend's login tokens, so a gateway login never works here.
SESSION_AUDIENCE = "dynaseal-backend"


def create_app(settings: BackendSettings, *, demo_data: bool = False) -> FastAPI:
    """With ``demo_data`` the original's demo user exists and, unless LLM_KEY and
    LLM_USER_ID are set, keys are signed for the demo tenant."""
    if demo_data:
        settings = with_demo_tenant(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        try:
            await prepare_schema(db, "backend", auto_create=True)
            if settings.admin_user_password is not None:
                await crud.ensure_admin(db, settings.admin_user_password.get_secret_value())
            if demo_data:
                await load_demo_data(db)
            app.state.db = db
            yield
        finally:
            await db.dispose()

    app = FastAPI(title="Dynaseal backend", lifespan=lifespan)
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle.for_service(settings)
    app.state.tokens = SessionTokens.for_service(settings, SESSION_AUDIENCE)
    secret = settings.webhook_secret
    app.state.callback_verifier = CallbackVerifier(secret.get_secret_value() if secret else None)
    configure(
        app,
        settings.cors_origins,
        body_limit=settings.max_body_bytes,
        body_limits={"/callback/usage": settings.max_callback_bytes},
    )
    include_everywhere(app, [api_router])

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
