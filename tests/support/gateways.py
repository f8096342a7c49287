"""A gateway on loopback with the original demo tenant, for the suite's shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dynaseal.gateway.app import create_app
from dynaseal.gateway.settings import GatewaySettings
from support.databases import fresh_database
from support.servers import ServerThread, serve
from support.tenants import ADMIN_PASSWORD
from support.upstream import FakeUpstream


@contextmanager
def demo_gateway(
    directory: Path, upstream: FakeUpstream, *, callback_url: str | None = None, **settings: Any
) -> Iterator[ServerThread]:
    """A gateway on a fresh database in front of ``upstream``, with the demo tenant (its
    callbacks go to ``callback_url``) and the test admin; ``settings`` override the rest."""
    with fresh_database(directory, "gateway") as url:
        configured = GatewaySettings(
            database_url=url,
            openai_base_url=f"{upstream.url}/v1",
            admin_user_password=ADMIN_PASSWORD,
            **settings,
        )
        app = create_app(configured, demo=True, demo_data_callback_url=callback_url)
        with serve(app) as server:
            yield server
