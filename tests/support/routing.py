"""Gateways whose upstreams come from a routing file (ROUTING_FILE), on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dynaseal.gateway.app import create_app
from dynaseal.gateway.settings import GatewaySettings
from support.databases import fresh_database
from support.servers import ServerThread, serve
from support.tenants import ADMIN_PASSWORD


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # strings and lists of strings read the same in TOML


def deployment(model: str, base_url: str, **fields: Any) -> str:
    """One ``[[deployments]]`` table of a routing file."""
    lines = [
        "[[deployments]]",
        f"model = {toml_value(model)}",
        f"base_url = {toml_value(base_url)}",
    ]
    lines += [f"{name} = {toml_value(value)}" for name, value in fields.items()]
    return "\n".join(lines) + "\n"


def router_policy(**fields: Any) -> str:
    return "[router]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in fields.items())


@contextmanager
def routed_gateway(
    directory: Path, routing: str, *, callback_url: str, **settings: Any
) -> Iterator[ServerThread]:
    """A gateway with the demo tenant (its callbacks to ``callback_url``) whose upstreams
    are the routing file ``routing``."""
    path = directory / "routing.toml"
    path.write_text(routing)
    with fresh_database(directory, "gateway") as url:
        configured = GatewaySettings(
            database_url=url,
            routing_file=path,
            admin_user_password=ADMIN_PASSWORD,
            **settings,
        )
        app = create_app(configured, demo=True, demo_data_callback_url=callback_url)
        with serve(app) as server:
            yield server
