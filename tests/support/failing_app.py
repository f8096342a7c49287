"""An app whose start-up always fails, for testing how ``--workers`` reports it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette


def create() -> Starlette:
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("the start-up of this app always fails")
        yield

    return Starlette(lifespan=lifespan)
