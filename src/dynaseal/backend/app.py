"""Assembling the backend: storage, error format, CORS and the routes under every prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dynaseal.backend import console, crud
from dynaseal.backend.demo_data import load_demo_data, with_demo_tenant
from dynaseal.backend.metrics import BackendMetrics
from dynaseal.backend.routes import api_router
from dynaseal.backend.settings import BackendSettings
from dynaseal.backend.webhooks import CallbackVerifier
from dynaseal.core import tracing
from dynaseal.core.http import configure, include_everywhere
from dynaseal.core.login_throttle import LoginThrottle
from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.session_tokens import SessionTokens
from dynaseal.core.shared_redis import connect
from dynaseal.core.startup import create_if_absent
from dynaseal.storage import Database
from dynaseal.storage.backend_models import BackendSecret
from dynaseal.storage.schema import prepare_schema

#: ``aud`` of the backend's login tokens, so a gateway login never works here.
SESSION_AUDIENCE = "dynaseal-backend"


def create_app(
    settings: BackendSettings, *, demo_data: bool = False, prepared: bool = False
) -> FastAPI:
    """With ``demo_data`` the original's demo user exists and, unless LLM_KEY and
    LLM_USER_ID are set, keys are signed for the demo tenant. Unless ``prepared`` (the
    caller ran :func:`prepare`), the start-up does the one-time set-up itself."""
    if demo_data:
        settings = with_demo_tenant(settings)

    redis = connect(settings.redis_url) if settings.redis_url else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        try:
            if not prepared:
                await _set_up(settings, db, demo_data)
            await server_secret.load(db, BackendSecret)
            app.state.db = db
            yield
        finally:
            await db.dispose()
            if redis is not None:
                await redis.aclose()

    tracing.start(settings.tracing, "dynaseal-backend")
    app = FastAPI(title="Dynaseal backend", lifespan=lifespan, **tracing.fastapi_options())
    app.state.settings = settings
    app.state.metrics = metrics = BackendMetrics()
    app.state.login_throttle = LoginThrottle.for_service(settings, "backend", redis)
    server_secret = ServerSecret(settings.secret_key)
    app.state.server_secret = server_secret
    app.state.tokens = SessionTokens.for_service(settings, SESSION_AUDIENCE, server_secret)
    secret = settings.webhook_secret
    app.state.callback_verifier = CallbackVerifier(secret.get_secret_value() if secret else None)
    configure(
        app,
        settings.cors_origins,
        body_limit=settings.max_body_bytes,
        body_limits={"/callback/usage": settings.max_callback_bytes},
        metrics=metrics,
        metrics_token=settings.metrics_token,
    )
    include_everywhere(app, [api_router])

    app.mount(console.PATH, console.create_console(app))

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def prepare(settings: BackendSettings, *, demo_data: bool = False) -> None:
    """The one-time set-up, run once before serving: create an empty database's schema or
    refuse an out-of-date one, create the admin user, load the demo user. Raises
    :class:`ConfigError` (schema) or :class:`OSError` / :class:`DBAPIError` (database)."""
    db = Database(settings.database_url)
    try:
        await _set_up(settings, db, demo_data)
    finally:
        await db.dispose()


async def _set_up(settings: BackendSettings, db: Database, demo_data: bool) -> None:
    async with db.startup_lock("dynaseal backend start-up"):
        await prepare_schema(db, "backend", auto_create=True)
        admin_password = settings.admin_user_password
        if admin_password is not None:
            await create_if_absent(lambda: crud.ensure_admin(db, admin_password.get_secret_value()))
        if demo_data:
            await create_if_absent(lambda: load_demo_data(db))
