"""``dynaseal deliveries``: a tenant's usage callbacks on the gateway, from a terminal —
what was sent, why an attempt failed, sending one again, a test event, a new secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Column, Table

from dynaseal.cli.output import EXIT_CONFIG, console, fail

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
    try:
        with httpx.Client(base_url=login.gateway_url, timeout=30) as http:
            tokens = _json(
                http.post(
                    "/v1/user/login", data={"username": login.username, "password": login.password}
                )
            )
            http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
            yield http
    except httpx.HTTPError as exc:
        fail(f"gateway {login.gateway_url} unreachable: {exc}")


def _json(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    fail(f"gateway answered {response.status_code}: {message}")


def _print_delivery(delivery: dict[str, Any]) -> None:
    for label in ("id", "type", "status", "attempts", "url", "last_error", "next_attempt_at"):
        if delivery.get(label) is not None:
            console.print(f"{label:<16}{escape(str(delivery[label]))}")


@app.command("list")
def list_deliveries(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only these: pending, delivered, failed or disabled.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """The latest deliveries and where each one stands."""
    params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
    with _gateway(ctx) as http:
        data = _json(http.get("/v1/deliveries", params=params))["data"]
    # The id is what ``show`` and ``resend`` take: never cut short.
    whole_id = Column("id", no_wrap=True, min_width=36)
    table = Table(whole_id, "type", "status", "attempts", "created", "last error")
    for d in data:
        table.add_row(
            d["id"], d["type"], d["status"], str(d["attempts"]), d["created_at"], d["last_error"]
        )
    console.print(table)


@app.command()
def show(ctx: typer.Context, delivery_id: str) -> None:
    """One delivery: every attempt with its answer, and the payload sent."""
    with _gateway(ctx) as http:
        delivery = _json(http.get(f"/v1/deliveries/{delivery_id}"))
    _print_delivery(delivery)
    table = Table("#", "at", "status", "error", "ms")
    for a in delivery["attempt_log"]:
        status = str(a["status_code"]) if a["status_code"] is not None else "-"
        table.add_row(
            str(a["attempt"]), a["attempted_at"], status, a["error"] or "", str(a["duration_ms"])
        )
    console.print(table)
    console.print_json(json.dumps(delivery["payload"]))


@app.command()
def resend(ctx: typer.Context, delivery_id: str) -> None:
    """Send a delivery again now (same webhook-id, so receivers never count it twice)."""
    with _gateway(ctx) as http:
        _print_delivery(_json(http.post(f"/v1/deliveries/{delivery_id}/resend")))


@app.command()
def test(ctx: typer.Context) -> None:
    """Send a signed test event to the callback URL."""
    with _gateway(ctx) as http:
        _print_delivery(_json(http.post("/v1/deliveries/test")))


@app.command("rotate-secret")
def rotate_secret(ctx: typer.Context) -> None:
    """A new webhook secret, shown once; the old one keeps signing during the overlap."""
    with _gateway(ctx) as http:
        rotated = _json(http.post("/v1/webhook-secret/rotate"))
    console.print(f"webhook secret  {rotated['secret']}")
    if rotated["previous_secret_valid_until"]:
        console.print(f"previous secret also signs until {rotated['previous_secret_valid_until']}")
