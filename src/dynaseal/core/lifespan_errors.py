"""A start-up failure the operator fixes outside the code — a :class:`ConfigError` (such as
an out-of-date database schema) or a dependency that never answered — reaches the server
log as its message, not a traceback: uvicorn logs whatever text the application reports
with ``lifespan.startup.failed``."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dynaseal.core.settings import ConfigError
from dynaseal.core.startup import DependencyUnavailable


class ConfigErrorsAtStartup:
    """ASGI middleware: replace the traceback of a failed start-up by the error's message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        failed: Message | None = None

        async def hold_failure(message: Message) -> None:
            nonlocal failed
            if message["type"] == "lifespan.startup.failed":
                failed = message
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except (ConfigError, DependencyUnavailable) as exc:
            if failed is not None:
                failed = {**failed, "message": str(exc)}
            raise
        finally:
            if failed is not None:
                await send(failed)
