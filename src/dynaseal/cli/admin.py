"""``dynaseal admin``: the operator's daily tasks on a running gateway, over its HTTP API —
tenants (create, list, disable, enable), their signing keys (create, list, retire,
revoke), revoking dynamic keys, and usage.

``dynaseal admin login`` stores the admin's tokens in a file only its owner can read
(``admin.json`` in the user's config directory); ``DYNASEAL_ADMIN_TOKEN`` (an access
token) takes precedence, for scripts. An expired access token is renewed with the stored
refresh token, once, without asking.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from dynaseal.cli.gateway_api import answer, gateway_client, log_in
from dynaseal.cli.options import Flag, JsonOutput, Password, given
from dynaseal.cli.output import EXIT_CONFIG, as_json, console, fail, table
from dynaseal.webui.formats import usd

if TYPE_CHECKING:
    import httpx

TOKEN_VARIABLE = "DYNASEAL_ADMIN_TOKEN"
ADMIN_PASSWORD = "DYNASEAL_ADMIN_PASSWORD"
TENANT_PASSWORD = "DYNASEAL_TENANT_PASSWORD"
DEFAULT_GATEWAY = "http://127.0.0.1:8000"

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The operator's tasks on a gateway: tenants, their keys, revocations, usage. "
    "Start with `dynaseal admin login`.",
)
tenants_app = typer.Typer(no_args_is_help=True, help="Create, list, disable and enable tenants.")
keys_app = typer.Typer(no_args_is_help=True, help="A tenant's signing keys (API keys).")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")

TenantOption = Annotated[str, typer.Option("--tenant", help="The tenant's id or username.")]
BackendEnv = Annotated[
    bool,
    Flag(
        "--backend-env",
        help="Print only the backend's variables (LLM_USER_ID=... lines), for an env file.",
    ),
]
TenantArgument = Annotated[str, typer.Argument(help="The tenant's id or username.")]


def credentials_path() -> Path:
    """Where ``login`` keeps the tokens (``$XDG_CONFIG_HOME/dynaseal/admin.json``)."""
    return Path(typer.get_app_dir("dynaseal")) / "admin.json"


def _stored() -> dict[str, Any]:
    try:
        stored: dict[str, Any] = json.loads(credentials_path().read_text())
        return stored
    except (OSError, ValueError):
        return {}


def _store(credentials: dict[str, Any]) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 before anything is written: the tokens are never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(credentials, file)
    return path


@dataclass(slots=True)
class _Target:
    gateway_url: str | None


@app.callback()
def _gateway_option(
    ctx: typer.Context,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            envvar="DYNASEAL_GATEWAY_URL",
            help="The gateway.",
            show_default=f"the one of `admin login`, else {DEFAULT_GATEWAY}",
        ),
    ] = None,
) -> None:
    ctx.obj = _Target(gateway_url.rstrip("/") if gateway_url else None)


class _Admin:
    """Requests as the admin; a 401 renews the stored access token once and retries."""

    def __init__(self, http: httpx.Client, credentials: dict[str, Any] | None) -> None:
        self.http = http
        self._credentials = credentials  # None: a token from the environment, not renewable

    def __call__(self, method: str, path: str, **options: Any) -> Any:
        response = self.http.request(method, path, **options)
        if response.status_code == 401 and self._renew():
            response = self.http.request(method, path, **options)
        return answer(response)

    def _renew(self) -> bool:
        if not self._credentials or not self._credentials.get("refresh_token"):
            return False
        renewed = self.http.post(
            "/v1/user/refresh", json={"refresh_token": self._credentials["refresh_token"]}
        )
        if not renewed.is_success:
            fail("the stored admin login has expired: run `dynaseal admin login` again")
        self._credentials.update(renewed.json())
        _store(self._credentials)
        self.http.headers["Authorization"] = f"Bearer {self._credentials['access_token']}"
        return True


@contextmanager
def _admin(ctx: typer.Context) -> Iterator[_Admin]:
    stored = _stored()
    token = os.environ.get(TOKEN_VARIABLE) or stored.get("access_token")
    if not token:
        fail(f"not logged in: run `dynaseal admin login` or set {TOKEN_VARIABLE}", EXIT_CONFIG)
    gateway_url = ctx.obj.gateway_url or stored.get("gateway_url") or DEFAULT_GATEWAY
    renewable = None if os.environ.get(TOKEN_VARIABLE) else stored
    with gateway_client(gateway_url, token) as http:
        yield _Admin(http, renewable)


def _print_env(variables: dict[str, str | None]) -> None:
    """``NAME=value`` lines a shell can source (``set -a; . ./backend.env``)."""
    for name, value in variables.items():
        if value:
            console.print(f"{name}={shlex.quote(value)}", markup=False, highlight=False)


def _show(record: dict[str, Any], labels: tuple[str, ...]) -> None:
    for label in labels:
        if record.get(label) is not None:
            console.print(f"{label:<18}{escape(str(record[label]))}")


def _usd(amount: str | None) -> str:
    """A USD decimal string of the API as the consoles show it (``$0.00001177``);
    ``—`` for a request whose model had no price."""
    return usd(None if amount is None else Decimal(amount))


# --- logging in -------------------------------------------------------------------------


@app.command()
def login(
    ctx: typer.Context,
    username: Annotated[str, typer.Option(help="The admin account.")] = "admin",
    password: Annotated[
        str | None,
        Password(ADMIN_PASSWORD, "The admin password (ADMIN_USER_PASSWORD of the gateway)."),
    ] = None,
) -> None:
    """Log in as the admin and keep the tokens for the other `admin` commands."""
    password = given(password, ADMIN_PASSWORD)
    gateway_url = ctx.obj.gateway_url or DEFAULT_GATEWAY
    with gateway_client(gateway_url) as http:
        tokens = log_in(http, username, password)
        me = answer(http.get("/v1/user/me"))
    if not me["is_admin"]:
        fail(f"{username} is a tenant, not the admin: use the tenant's own commands")
    path = _store({"gateway_url": gateway_url, **tokens})
    console.print(f"logged in to {gateway_url} as {username}; tokens kept in {path}")


@app.command()
def logout() -> None:
    """Forget the stored admin tokens."""
    credentials_path().unlink(missing_ok=True)
    console.print("logged out")


# --- tenants ----------------------------------------------------------------------------

_TENANT_FIELDS = (
    "id",
    "username",
    "email",
    "callback_url",
    "total_tokens",
    "total_cost",
    "disabled_at",
)


@tenants_app.command("create")
def create_tenant(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="The name the tenant logs in with.")],
    password: Annotated[
        str | None, Password(TENANT_PASSWORD, "The tenant's password (8 characters or more).")
    ] = None,
    email: Annotated[str | None, typer.Option(help="The tenant's email.")] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="Where the gateway sends the usage callbacks.")
    ] = None,
    json_output: JsonOutput = False,
    backend_env: BackendEnv = False,
) -> None:
    """Register a tenant (a business backend). Shows its webhook secret once."""
    body = {"username": username, "password": given(password, TENANT_PASSWORD), "email": email}
    if callback_url:
        body["callback_url"] = callback_url
    with _admin(ctx) as call:
        created = call("POST", "/v1/tenants", json=body)
    if json_output:
        as_json(created)
        return
    if backend_env:
        _print_env({"LLM_USER_ID": created["id"], "WEBHOOK_SECRET": created["webhook_secret"]})
        return
    _show(created, ("id", "username", "email", "callback_url"))
    console.print(f"{'webhook_secret':<18}{created['webhook_secret']}  (shown once)")


@tenants_app.command("list")
def list_tenants(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Every tenant, with its usage total and whether it is disabled."""
    with _admin(ctx) as call:
        listed = call("GET", "/v1/admin/tenants")
    if json_output:
        as_json(listed)
        return
    table(
        "id",
        "username",
        "callback url",
        "total tokens",
        "total cost",
        "disabled since",
        rows=[
            [
                t["id"],
                t["username"],
                t["callback_url"],
                t["total_tokens"],
                _usd(t["total_cost"]),
                t["disabled_at"],
            ]
            for t in listed
        ],
    )


@tenants_app.command("show")
def show_tenant(
    ctx: typer.Context, tenant: TenantArgument, json_output: JsonOutput = False
) -> None:
    """One tenant."""
    with _admin(ctx) as call:
        shown = call("GET", f"/v1/admin/tenants/{tenant}")
    if json_output:
        as_json(shown)
    else:
        _show({**shown, "total_cost": _usd(shown["total_cost"])}, _TENANT_FIELDS)


@tenants_app.command("disable")
def disable_tenant(ctx: typer.Context, tenant: TenantArgument) -> None:
    """Stop a tenant at once: it cannot log in and every dynamic key it minted is refused.
    Its data and pending callbacks stay; `enable` undoes it."""
    with _admin(ctx) as call:
        done = call("POST", f"/v1/admin/tenants/{tenant}/disable")
    console.print(f"disabled {done['username']} ({done['id']}) since {done['disabled_at']}")


@tenants_app.command("enable")
def enable_tenant(ctx: typer.Context, tenant: TenantArgument) -> None:
    """Let a disabled tenant log in and its keys work again."""
    with _admin(ctx) as call:
        done = call("POST", f"/v1/admin/tenants/{tenant}/enable")
    console.print(f"enabled {done['username']} ({done['id']})")


# --- signing keys -----------------------------------------------------------------------

_KEY_FIELDS = ("kid", "algorithm", "label", "created_at", "retires_at", "revoked_at")


@keys_app.command("create")
def create_key(
    ctx: typer.Context,
    tenant: TenantOption,
    label: Annotated[str | None, typer.Option(help="A name to tell keys apart.")] = None,
    algorithm: Annotated[
        str, typer.Option(help="HS256 (the gateway makes a secret), EdDSA or ES256.")
    ] = "HS256",
    public_key_file: Annotated[
        Path | None,
        typer.Option(help="PEM public key, for EdDSA and ES256.", exists=True, dir_okay=False),
    ] = None,
    json_output: JsonOutput = False,
    backend_env: BackendEnv = False,
) -> None:
    """A new signing key for the tenant. An HS256 secret is shown once."""
    body: dict[str, Any] = {"algorithm": algorithm, "label": label}
    if public_key_file is not None:
        body["public_key"] = public_key_file.read_text()
    with _admin(ctx) as call:
        created = call("POST", f"/v1/admin/tenants/{tenant}/api-keys", json=body)
    if json_output:
        as_json(created)
        return
    if backend_env:  # an asymmetric key's private half is already with the backend
        _print_env(
            {
                "LLM_USER_ID": created["tenant_id"],
                "LLM_KEY_ID": created["kid"],
                "LLM_KEY_ALGORITHM": created["algorithm"],
                "LLM_KEY": created.get("secret"),
            }
        )
        return
    _show(created, ("kid", "tenant_id", "algorithm", "label"))
    if created.get("secret"):
        console.print(f"{'secret':<18}{created['secret']}  (shown once)")


@keys_app.command("list")
def list_keys(ctx: typer.Context, tenant: TenantOption, json_output: JsonOutput = False) -> None:
    """The tenant's keys and their state (never a secret)."""
    with _admin(ctx) as call:
        listed = call("GET", f"/v1/admin/tenants/{tenant}/api-keys")
    if json_output:
        as_json(listed)
        return
    table(*_KEY_FIELDS, rows=[[k[field] for field in _KEY_FIELDS] for k in listed])


@keys_app.command("retire")
def retire_key(
    ctx: typer.Context,
    tenant: TenantOption,
    kid: Annotated[str, typer.Argument(help="The key's id.")],
    grace_seconds: Annotated[
        int, typer.Option(min=0, help="How long the key keeps verifying.")
    ] = 3600,
) -> None:
    """Rotate a key out: it keeps verifying for the grace period, then is refused."""
    with _admin(ctx) as call:
        done = call(
            "POST",
            f"/v1/admin/tenants/{tenant}/api-keys/{kid}/retire",
            json={"grace_seconds": grace_seconds},
        )
    console.print(f"key {done['kid']} retires at {done['retires_at']}")


@keys_app.command("revoke")
def revoke_key(
    ctx: typer.Context,
    tenant: TenantOption,
    kid: Annotated[str, typer.Argument(help="The key's id.")],
) -> None:
    """Refuse every dynamic key signed with this key, at once."""
    with _admin(ctx) as call:
        done = call("DELETE", f"/v1/admin/tenants/{tenant}/api-keys/{kid}")
    console.print(f"key {done['kid']} revoked at {done['revoked_at']}")


# --- revocations and usage --------------------------------------------------------------


@app.command()
def revoke(
    ctx: typer.Context,
    tenant: TenantOption,
    event_id: Annotated[
        str | None, typer.Option(help="Refuse the dynamic key with this event id.")
    ] = None,
    before: Annotated[
        datetime | None,
        typer.Option(
            help="Refuse every key the tenant minted before this time (ISO 8601, with a "
            "timezone, e.g. 2026-11-28T12:00:00+00:00).",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M:%S%z"],
        ),
    ] = None,
    everything: Annotated[
        bool, Flag("--all", help="Refuse every key the tenant minted until now.")
    ] = False,
) -> None:
    """Revoke a tenant's dynamic keys: one event id, or everything minted before a time."""
    if sum((event_id is not None, before is not None, everything)) != 1:
        fail("give exactly one of --event-id, --before or --all", EXIT_CONFIG)
    body: dict[str, Any]
    if event_id is not None:
        body = {"event_id": event_id}
    elif before is not None:
        body = {"minted_before": before.isoformat()}
    else:
        body = {"all_keys": True}
    with _admin(ctx) as call:
        done = call("POST", f"/v1/admin/tenants/{tenant}/revocations", json=body)
    if done.get("event_id"):
        console.print(f"event {done['event_id']} revoked")
    else:
        console.print(f"every key minted before {done['keys_not_before']} is refused")


@app.command()
def usage(
    ctx: typer.Context,
    tenant: TenantOption,
    event_id: Annotated[str | None, typer.Option(help="Only this event id.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="At most this many, newest first.")
    ] = 20,
    json_output: JsonOutput = False,
) -> None:
    """A tenant's usage: totals and the latest requests."""
    params: dict[str, Any] = {"limit": limit} | ({"event_id": event_id} if event_id else {})
    with _admin(ctx) as call:
        ledger = call("GET", f"/v1/admin/tenants/{tenant}/usage", params=params)
    if json_output:
        as_json(ledger)
        return
    totals = ledger["totals"]
    console.print(
        f"{totals['requests']} requests, {totals['total_tokens']} tokens "
        f"({totals['prompt_tokens']} prompt + {totals['completion_tokens']} completion), "
        f"{_usd(totals['cost'])}; tenant total {ledger['tenant_total_tokens']} tokens, "
        f"{_usd(ledger['tenant_total_cost'])}"
    )
    table(
        "request id",
        "event id",
        "model",
        "status",
        "tokens",
        "cost",
        "ended",
        rows=[
            [
                r["request_id"],
                r["event_id"],
                r["model"],
                r["status"],
                r["total_tokens"],
                _usd(r["cost"]),
                r["ended_at"],
            ]
            for r in ledger["data"]
        ],
    )
