"""Talking to a running gateway from a command: one red line for any HTTP trouble."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dynaseal.cli.output import fail

if TYPE_CHECKING:
    import httpx


@contextmanager
def gateway_client(gateway_url: str, token: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client for ``gateway_url`` (with ``token`` as bearer when given); an
    unreachable gateway ends the command with a message."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=gateway_url, timeout=30, headers=headers) as http:
            yield http
    except httpx.HTTPError as exc:
        fail(f"gateway {gateway_url} unreachable: {exc}")


def answer(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer; otherwise end the command with the gateway's message."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    fail(f"gateway answered {response.status_code}: {message}")


def log_in(http: httpx.Client, username: str, password: str) -> dict[str, Any]:
    """Log in to the gateway (tenant or admin): the access and refresh tokens."""
    tokens: dict[str, Any] = answer(
        http.post("/v1/user/login", data={"username": username, "password": password})
    )
    http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    return tokens
