"""The reference backend's console at ``/console``: an end user's own page — the keys
minted for them, and their usage per day against their daily quota.

Login is the backend's own (``POST /v1/user/login``: same password check, same
throttle); the session and CSRF machinery is the gateway console's
(:mod:`dynaseal.webui`), with its own table and cookie.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request

from dynaseal.backend.console import routes
from dynaseal.backend.routes import users
from dynaseal.backend.settings import BackendSettings
from dynaseal.storage import Database
from dynaseal.storage.backend_models import ConsoleSession
from dynaseal.webui.app import Console, create_console_app, templates_for
from dynaseal.webui.sessions import SessionStore

PATH = "/console"


def create_console(backend: FastAPI) -> FastAPI:
    """The console to mount at :data:`PATH` of ``backend``, whose state (database, login
    tokens, throttle) it uses once the backend has started."""
    settings: BackendSettings = backend.state.settings

    def db_of(_: Request) -> Database:
        return backend.state.db  # type: ignore[no-any-return]

    async def authenticate(request: Request, username: str, password: str) -> str:
        state = backend.state
        tokens = await users.login(
            request, username, password, state.db, state.tokens, state.login_throttle
        )
        return state.tokens.subject(tokens["access_token"], "access")  # type: ignore[no-any-return]

    console = Console(
        title="Dynaseal backend",
        store=SessionStore.for_service(
            ConsoleSession, settings, backend.state.server_secret, "dynaseal_backend_console"
        ),
        templates=templates_for(__name__),
        db_of=db_of,
        authenticate=authenticate,
        login_hint="Your account on this backend (the one your app logs in with).",
    )
    app = create_console_app(console, [routes.router])
    app.state.backend = backend
    return app
