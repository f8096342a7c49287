"""One benchmark service in its own process: ``python -m benchmarks.serve ROLE PORT CONFIG``.

Each party runs in a process of its own so that none shares a GIL with another or with
the load generator. ``CONFIG`` is a JSON object; uvicorn picks uvloop and httptools
when they are installed (``uvicorn[standard]``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson
import uvicorn

from benchmarks.meter import ByteMeter, backend_bucket


def upstream(_: dict[str, Any]) -> Any:
    from benchmarks.upstream import app

    return app


def relay(config: dict[str, Any]) -> Any:
    from benchmarks.relay import metered_relay

    return metered_relay(config["upstream_url"])


def gateway(config: dict[str, Any]) -> Any:
    from dynaseal.gateway.app import create_app
    from dynaseal.gateway.settings import GatewaySettings

    settings = GatewaySettings(
        database_url=config["database_url"], openai_base_url=config["upstream_url"] + "/v1"
    )
    return create_app(settings, demo=True, demo_data_callback_url=config["callback_url"])


def backend(config: dict[str, Any]) -> Any:
    from dynaseal.backend.app import create_app
    from dynaseal.backend.settings import BackendSettings

    settings = BackendSettings(
        database_url=config["database_url"],
        gateway_url=config["gateway_url"],
        key_budget_tokens=config["key_budget_tokens"],
        default_models=config["default_models"],
        keys_per_user_per_minute=0,  # one user mints every key the benchmark measures
    )
    return ByteMeter(create_app(settings, demo_data=True), backend_bucket)


ROLES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "upstream": upstream,
    "relay": relay,
    "gateway": gateway,
    "backend": backend,
}
#: Only the Dynaseal apps have start-up work (tables, demo data).
_LIFESPAN = {"gateway", "backend"}


def main(argv: list[str]) -> None:
    role, port, config = argv[0], int(argv[1]), orjson.loads(argv[2])
    uvicorn.run(
        ROLES[role](config),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on" if role in _LIFESPAN else "off",
        backlog=4096,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
