"""``dynaseal gateway`` and ``dynaseal backend``: one service each, in the foreground."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from dynaseal.backend.app import create_app as create_backend
from dynaseal.backend.settings import BackendSettings
from dynaseal.cli.logs import configure_logging
from dynaseal.cli.output import err_console, fail
from dynaseal.cli.schema import DatabaseUrl, schema_or_exit
from dynaseal.cli.servers import PortInUse, ServerFailed, bind, run_foreground
from dynaseal.cli.settings import settings_or_exit
from dynaseal.gateway.app import DEMO_DATA_VARIABLE, create_app_from_environment
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings

Host = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for all).")]
DemoData = Annotated[
    bool,
    typer.Option(
        "--demo-data",
        help="Load the original design's demo data. Its credentials are public: "
        "for trying things out only, never in production.",
    ),
]
LogLevel = Annotated[
    str,
    typer.Option(
        help="Minimum level of the log lines: debug, info, warning or error.",
        case_sensitive=False,
    ),
]


def serve(name: str, app: Any, host: str, port: int, log_level: str, **options: Any) -> None:
    """Bind first so a busy port is a one-line error, then serve until interrupted."""
    try:
        sock = bind(host, port)
    except PortInUse as exc:
        fail(f"cannot start the {name}: {exc}; stop what uses it or choose another with --port")
    except ServerFailed as exc:
        fail(f"cannot start the {name}: {exc}")
    host_shown, bound_port = sock.getsockname()[:2]
    err_console.print(f"starting the {name} on http://{host_shown}:{bound_port} (Ctrl-C to stop)")
    try:
        run_foreground(app, sock, log_level, **options)
    except ServerFailed as exc:
        fail(f"the {name} did not start: {exc}")


def warn_demo_data(what: str) -> None:
    err_console.print(
        f"[yellow]warning: --demo-data loads {what}; its credentials are public, "
        "never use it in production[/yellow]"
    )


def gateway(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    demo_data: DemoData = False,
    database_url: DatabaseUrl = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Redis for the state replicas share (budgets, use counts, rate limits). "
            "Overrides REDIS_URL.",
            show_default="REDIS_URL, else none",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Worker processes serving the same port."),
    ] = 1,
    log_level: LogLevel = "info",
) -> None:
    """Run the gateway: the OpenAI-compatible server devices call with dynamic keys.

    Configured by environment variables (SECRET_KEY, OPENAI_BASE_URL, OPENAI_API_KEY,
    DATABASE_URL ...). Without OPENAI_BASE_URL it answers with a built-in offline responder.
    An empty database gets its schema on the first start; after an upgrade run
    `dynaseal gateway migrate`.
    """
    if ctx.invoked_subcommand:
        return
    configure_logging(log_level)
    settings = settings_or_exit(GatewaySettings, database_url=database_url, redis_url=redis_url)
    schema_or_exit(settings.database_url, "gateway")
    if demo_data:
        warn_demo_data("the demo tenant user1 and its API key")
    app: Any
    if workers == 1:
        app = create_gateway(settings, demo=demo_data)
    else:  # each worker process builds its own app from the environment
        os.environ.update(
            {"DATABASE_URL": settings.database_url, DEMO_DATA_VARIABLE: str(int(demo_data))}
        )
        if settings.redis_url:
            os.environ["REDIS_URL"] = settings.redis_url
        elif settings.budget_store != "database":
            # Budgets in one process's memory would not be shared by the workers.
            os.environ["BUDGET_STORE"] = "database"
        app = f"{create_app_from_environment.__module__}:{create_app_from_environment.__name__}"
    serve(
        "gateway",
        app,
        host,
        port,
        log_level,
        graceful_seconds=settings.shutdown_timeout_seconds,
        workers=workers,
    )


def backend(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 9000,
    demo_data: DemoData = False,
    database_url: DatabaseUrl = None,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            help="Gateway URL handed to devices with their keys. Overrides GATEWAY_URL.",
            show_default="GATEWAY_URL, else http://127.0.0.1:8000",
        ),
    ] = None,
    log_level: LogLevel = "info",
) -> None:
    """Run the reference business backend: logins, dynamic keys and usage callbacks.

    Devices log in here and get their dynamic keys; the gateway reports their usage here.

    Signs keys with LLM_KEY for tenant LLM_USER_ID (with --demo-data, the demo tenant's
    when those are unset). An empty database gets its schema on the first start; after an
    upgrade run `dynaseal backend migrate`.
    """
    if ctx.invoked_subcommand:
        return
    configure_logging(log_level)
    settings = settings_or_exit(BackendSettings, database_url=database_url, gateway_url=gateway_url)
    schema_or_exit(settings.database_url, "backend")
    if demo_data:
        warn_demo_data("the demo user client1 and signs with the demo tenant's public key")
    serve("backend", create_backend(settings, demo_data=demo_data), host, port, log_level)
