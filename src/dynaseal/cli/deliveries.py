"""``dynaseal deliveries``: a tenant's usage callbacks on the gateway, from a terminal —
what was sent, why an attempt failed, sending one again, a test event, a new secret."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from dynaseal.cli.gateway_api import answer, gateway_client, log_in
from dynaseal.cli.output import EXIT_CONFIG, as_json, console, fail, table

if TYPE_CHECKING:
    import httpx

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="A tenant's usage callbacks on the gateway: list, show, resend, test.",
)


@dataclass(frozen=True, slots=True)
class _Login:
    gateway_url: str
    username: str | None
    password: str | None


@app.callback()
def _login_options(
    ctx: typer.Context,
    gateway_url: Annotated[
        str, typer.Option(envvar="DYNASEAL_GATEWAY_URL", help="The gateway.")
    ] = "http://127.0.0.1:8000",
    username: Annotated[
        str | None,
        typer.Option(envvar="DYNASEAL_TENANT_USERNAME", help="Tenant user name (or email)."),
    ] = None,
    password: Annotated[
        str | None, typer.Option(envvar="DYNASEAL_TENANT_PASSWORD", help="Tenant password.")
    ] = None,
) -> None:
    ctx.obj = _Login(gateway_url.rstrip("/"), username, password)


@contextmanager
def _gateway(ctx: typer.Context) -> Iterator[httpx.Client]:
    """A client logged in as the tenant; HTTP trouble ends the command in one red line."""
    login: _Login = ctx.obj
    # Never prompt: the command must work without a terminal (CI, scripts).
    if not login.username or not login.password:
        fail("pass --username and --password or set DYNASEAL_TENANT_USERNAME/PASSWORD", EXIT_CONFIG)
    with gateway_client(login.gateway_url) as http:
        log_in(http, login.username, login.password)
        yield http


def _print_delivery(delivery: dict[str, Any]) -> None:
    for label in ("id", "type", "status", "attempts", "url", "last_error", "next_attempt_at"):
        if delivery.get(label) is not None:
            console.print(f"{label:<16}{escape(str(delivery[label]))}")


@app.command("list")
def list_deliveries(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only these: pending, delivered, failed, disabled, batched.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """The latest deliveries and where each one stands."""
    params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
    with _gateway(ctx) as http:
        data = answer(http.get("/v1/deliveries", params=params))["data"]
    table(
        "id",
        "type",
        "status",
        "attempts",
        "created",
        "last error",
        rows=[
            [d["id"], d["type"], d["status"], d["attempts"], d["created_at"], d["last_error"]]
            for d in data
        ],
    )


@app.command()
def show(ctx: typer.Context, delivery_id: str) -> None:
    """One delivery: every attempt with its answer, and the payload sent."""
    with _gateway(ctx) as http:
        delivery = answer(http.get(f"/v1/deliveries/{delivery_id}"))
    _print_delivery(delivery)
    table(
        "#",
        "at",
        "status",
        "error",
        "ms",
        rows=[
            [a["attempt"], a["attempted_at"], a["status_code"] or "-", a["error"], a["duration_ms"]]
            for a in delivery["attempt_log"]
        ],
    )
    as_json(delivery["payload"])


@app.command()
def resend(ctx: typer.Context, delivery_id: str) -> None:
    """Send a delivery again now (same webhook-id, so receivers never count it twice)."""
    with _gateway(ctx) as http:
        _print_delivery(answer(http.post(f"/v1/deliveries/{delivery_id}/resend")))


@app.command()
def test(ctx: typer.Context) -> None:
    """Send a signed test event to the callback URL."""
    with _gateway(ctx) as http:
        _print_delivery(answer(http.post("/v1/deliveries/test")))


@app.command("rotate-secret")
def rotate_secret(ctx: typer.Context) -> None:
    """A new webhook secret, shown once; the old one keeps signing during the overlap."""
    with _gateway(ctx) as http:
        rotated = answer(http.post("/v1/webhook-secret/rotate"))
    console.print(f"webhook secret  {rotated['secret']}")
    if rotated["previous_secret_valid_until"]:
        console.print(f"previous secret also signs until {rotated['previous_secret_valid_until']}")
