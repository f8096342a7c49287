"""``dynaseal gateway`` and ``dynaseal backend``: one service each, in the foreground.

Start-up is done in this process before serving: settings, then the one-time set-up
(dependencies, schema, admin account, demo data), then the socket — so a mistake is one
red line and a non-zero exit, and ``--workers`` processes never race for the set-up.
FastAPI, SQLAlchemy and the rest are imported only when a service starts, so that
``dynaseal --help`` answers at once.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dynaseal.cli.delivery_worker import WorkerProcess, starts_worker
from dynaseal.cli.options import DatabaseUrl, Flag
from dynaseal.cli.output import fail
from dynaseal.cli.schema import database_job_or_exit

if TYPE_CHECKING:
    import socket

    from dynaseal.gateway.settings import GatewaySettings

log = logging.getLogger("dynaseal")

Host = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for all).")]
DemoData = Annotated[
    bool,
    Flag(
        "--demo-data",
        help="Load the original design's demo data. Its credentials are public: "
        "for trying things out only, never in production.",
    ),
]
LogLevel = Annotated[
    str,
    typer.Option(
        help="Minimum level of the log lines: debug, info, warning or error. "
        "LOG_FORMAT=json writes one JSON object per line.",
        case_sensitive=False,
    ),
]


def bind_or_exit(name: str, host: str, port: int) -> socket.socket:
    """Bind before anything else, so a busy port is a one-line error at once."""
    from dynaseal.cli.servers import PortInUse, ServerFailed, bind

    try:
        return bind(host, port)
    except PortInUse as exc:
        fail(f"cannot start the {name}: {exc}; stop what uses it or choose another with --port")
    except ServerFailed as exc:
        fail(f"cannot start the {name}: {exc}")


def serve_on(name: str, app: Any, sock: socket.socket, log_level: str, **options: Any) -> None:
    """Serve on ``sock`` until interrupted; a start-up failure ends the command with 1."""
    from dynaseal.cli.servers import ServerFailed, base_url, run_foreground

    log.info("starting the %s on %s (Ctrl-C to stop)", name, base_url(sock))
    try:
        run_foreground(app, sock, log_level, **options)
    except ServerFailed as exc:
        fail(f"the {name} did not start: {exc}")


def warn_demo_data(what: str) -> None:
    log.warning(
        "--demo-data loads %s; its credentials are public, never use it in production", what
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
    `dynaseal gateway migrate`. API documentation: /docs on the running gateway.
    """
    if ctx.invoked_subcommand:
        return
    from dynaseal.core import metrics_processes

    if workers == 1:
        metrics_processes.single_process()  # before prometheus-client is imported
    from dynaseal.cli.settings import settings_or_exit
    from dynaseal.core.logs import configure_logging
    from dynaseal.gateway import app as gateway_app
    from dynaseal.gateway.settings import GatewaySettings

    configure_logging(log_level)
    settings = settings_or_exit(GatewaySettings, database_url=database_url, redis_url=redis_url)
    if demo_data:
        warn_demo_data("the demo tenant user1 and its API key")
    sock = bind_or_exit("gateway", host, port)
    database_job_or_exit(
        "start the gateway",
        settings.database_url,
        lambda: gateway_app.prepare(settings, demo=demo_data),
    )
    delivery = None
    if starts_worker(settings):  # the serving processes only queue callbacks
        settings = settings.model_copy(update={"callback_delivery": "external"})
        os.environ["CALLBACK_DELIVERY"] = "external"
        delivery = WorkerProcess(settings, log_level, demo=demo_data)
        delivery.start()
    try:
        _serve_gateway(settings, sock, log_level, workers=workers, demo_data=demo_data)
    finally:
        if delivery is not None:
            delivery.stop()


def _serve_gateway(
    settings: GatewaySettings, sock: socket.socket, log_level: str, *, workers: int, demo_data: bool
) -> None:
    from dynaseal.core import metrics_processes
    from dynaseal.gateway import app as gateway_app

    app: Any
    if workers == 1:
        app = gateway_app.create_app(settings, demo=demo_data, prepared=True)
    else:  # each worker process builds its own app from the environment
        os.environ.update(
            {
                "DATABASE_URL": settings.database_url,
                gateway_app.DEMO_DATA_VARIABLE: str(int(demo_data)),
                gateway_app.PREPARED_VARIABLE: "1",
            }
        )
        if settings.redis_url:
            os.environ["REDIS_URL"] = settings.redis_url
        elif settings.budget_store != "database":
            # Budgets in one process's memory would not be shared by the workers.
            os.environ["BUDGET_STORE"] = "database"
        factory = gateway_app.create_app_from_environment
        app = f"{factory.__module__}:{factory.__name__}"
    # The workers inherit PROMETHEUS_MULTIPROC_DIR: they add up each other's metrics.
    with metrics_processes.shared_by_workers() if workers > 1 else nullcontext():
        serve_on(
            "gateway",
            app,
            sock,
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
    when those are unset, and the demo tenant's callbacks are pointed at this backend).
    An empty database gets its schema on the first start; after an upgrade run
    `dynaseal backend migrate`. End users: `dynaseal backend create-user`.
    """
    if ctx.invoked_subcommand:
        return
    from dynaseal.core.metrics_processes import single_process

    single_process()  # before prometheus-client is imported
    from dynaseal.backend import app as backend_app
    from dynaseal.backend.settings import BackendSettings
    from dynaseal.cli.settings import settings_or_exit
    from dynaseal.core.logs import configure_logging
    from dynaseal.core.original_demo import DEMO_TENANT_ID

    configure_logging(log_level)
    settings = settings_or_exit(BackendSettings, database_url=database_url, gateway_url=gateway_url)
    if demo_data:
        warn_demo_data("the demo user client1 and signs with the demo tenant's public key")
    sock = bind_or_exit("backend", host, port)
    database_job_or_exit(
        "start the backend",
        settings.database_url,
        lambda: backend_app.prepare(settings, demo_data=demo_data),
    )
    app = backend_app.create_app(settings, demo_data=demo_data, prepared=True)
    if demo_data and app.state.settings.llm_user_id == DEMO_TENANT_ID:
        _point_demo_callbacks_here(app.state.settings.gateway_url, sock)
    serve_on("backend", app, sock, log_level)


def _point_demo_callbacks_here(gateway_url: str, sock: socket.socket) -> None:
    """Tell a demo gateway to send the demo tenant's callbacks to this backend's real
    address (``--port`` may not be the original's 9000). Best effort: the gateway may
    not be running yet."""
    import httpx

    from dynaseal.core.original_demo import (
        DEMO_CALLBACK_URL,
        DEMO_TENANT_PASSWORD,
        DEMO_TENANT_USERNAME,
    )

    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard listener is reached on loopback
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    callback_url = f"http://{shown}:{port}/v1/callback/usage"
    try:
        with httpx.Client(base_url=gateway_url, timeout=3.0) as http:
            login = http.post(
                "/v1/user/login",
                data={"username": DEMO_TENANT_USERNAME, "password": DEMO_TENANT_PASSWORD},
            )
            login.raise_for_status()
            token = login.json()["access_token"]
            http.patch(
                "/v1/user/me",
                json={"callback_url": callback_url},
                headers={"Authorization": f"Bearer {token}"},
            ).raise_for_status()
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        if callback_url != DEMO_CALLBACK_URL:
            log.warning(
                "could not point the demo tenant's callbacks at %s on the gateway %s (%s): "
                "start the gateway with --demo-data first, then this backend",
                callback_url,
                gateway_url,
                exc,
            )
        return
    log.info("the gateway %s sends the demo tenant's callbacks to %s", gateway_url, callback_url)
