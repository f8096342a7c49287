"""The gateway's web console at ``/console``: a tenant's usage, keys, ledger, callbacks
and limits, and the operator's view of all tenants.

Served by the gateway process itself (a sub-application, so the API's hot path never
runs its middleware). Pages call the same functions as the JSON API's routes, so the
console can do nothing the API does not allow, and checks nothing differently.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request

from dynaseal.gateway.console.routes import ROUTERS
from dynaseal.gateway.routes import account
from dynaseal.gateway.services import GatewayServices
from dynaseal.storage.gateway_models import ConsoleSession
from dynaseal.webui.app import Console, create_console_app, templates_for
from dynaseal.webui.sessions import SessionStore

PATH = "/console"


def create_console(services: GatewayServices) -> FastAPI:
    """The console to mount at :data:`PATH` of the gateway app."""

    async def authenticate(request: Request, username: str, password: str) -> str:
        # The API's own login: same password check, same throttle, same refusals.
        tokens = await account.login(request, services, username, password)
        return services.sessions.subject(tokens["access_token"], "access")

    console = Console(
        title="Dynaseal gateway",
        store=SessionStore.for_service(
            ConsoleSession, services.settings, services.server_secret, "dynaseal_gateway_console"
        ),
        templates=templates_for(__name__),
        db_of=lambda _: services.db,
        authenticate=authenticate,
        login_hint="Your tenant account on this gateway (as for POST /v1/user/login), "
        "or the operator's admin account.",
    )
    app = create_console_app(console, ROUTERS)
    app.state.services = services
    return app
