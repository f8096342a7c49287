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


def bare(config: dict[str, Any]) -> Any:
    from benchmarks.bare import app

    return app(config["upstream_url"])


def _gateway_settings(config: dict[str, Any]) -> Any:
    from dynaseal.gateway.settings import GatewaySettings

    return GatewaySettings(
        database_url=config["database_url"],
        openai_base_url=config["upstream_url"] + "/v1",
        redis_url=config.get("redis_url"),
    )


def gateway(port: int, config: dict[str, Any]) -> None:
    """``dynaseal gateway --workers N`` as production runs it (its delivery worker
    process included), after loading the demo tenant with the benchmark's callback URL
    (the command would give it port 9000's)."""
    import asyncio
    import os

    from dynaseal.cli.main import app
    from dynaseal.gateway.app import prepare

    settings = _gateway_settings(config)
    asyncio.run(prepare(settings, demo=True, demo_data_callback_url=config["callback_url"]))
    os.environ.update(
        {"DATABASE_URL": settings.database_url, "OPENAI_BASE_URL": config["upstream_url"] + "/v1"}
    )
    if settings.redis_url:
        os.environ["REDIS_URL"] = settings.redis_url
    workers = str(config["workers"])
    arguments = ["gateway", "--port", str(port), "--workers", workers, "--demo-data"]
    app([*arguments, "--log-level", "warning"], prog_name="dynaseal")


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
    "bare": bare,
    "backend": backend,
}
#: Only the backend has start-up work (tables, demo data); the gateway runs as its command.
_LIFESPAN = {"backend"}


def main(argv: list[str]) -> None:
    role, port, config = argv[0], int(argv[1]), orjson.loads(argv[2])
    if role == "gateway":
        gateway(port, config)
        return
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
