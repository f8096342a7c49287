"""The round trip of ``dynaseal demo``, in one process, for a first look.

Gateway and backend run on loopback in background threads, each with its own SQLite
file in a temporary directory; then the command plays the device over real HTTP, the
way an app would, and shows the usage callback the backend received.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
from rich.markup import escape

from dynaseal.backend.app import create_app as create_backend
from dynaseal.backend.settings import BackendSettings
from dynaseal.cli.output import console, text
from dynaseal.cli.progress import DemoFailed, Progress, StepFailed
from dynaseal.cli.servers import BackgroundServer, PortInUse, ServerFailed, base_url, bind
from dynaseal.cli.settings import settings_or_exit
from dynaseal.client import DeviceClientError, DynamicKey
from dynaseal.client.errors import error_from_response
from dynaseal.client.flows import KEY_PATH, LOGIN_PATH
from dynaseal.core.original_demo import (
    DEMO_TENANT_ID,
    DEMO_USER_PASSWORD,
    DEMO_USER_USERNAME,
)
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings

CALLBACK_TIMEOUT_SECONDS = 15.0
HOST = "127.0.0.1"
STEPS = 6


def round_trip(
    stack: ExitStack, workdir: Path, gateway_port: int, backend_port: int, prompt: str
) -> tuple[str, str]:
    """Start both services, play the device; returns the gateway's and backend's URLs."""
    # Settings and ports first: a bad variable or a busy port stops us before anything runs.
    secret = _throwaway_secret()
    gateway_settings = settings_or_exit(
        GatewaySettings, database_url=_sqlite(workdir / "gateway.db"), secret_key=secret
    )
    gateway_sock = _reserve(stack, "gateway", gateway_port, "--gateway-port")
    backend_sock = _reserve(stack, "backend", backend_port, "--backend-port")
    gateway_url, backend_url = base_url(gateway_sock), base_url(backend_sock)
    backend_settings = settings_or_exit(
        BackendSettings,
        database_url=_sqlite(workdir / "backend.db"),
        secret_key=secret,
        gateway_url=gateway_url,
    )
    # The demo gateway knows only the demo tenant: forget any LLM_* of the environment so
    # that create_app(demo_data=True) configures the demo tenant's credentials.
    backend_settings = backend_settings.model_copy(
        update={"llm_key": None, "llm_user_id": None, "llm_key_id": None}
    )
    progress = Progress(STEPS)
    http = stack.enter_context(httpx.Client(timeout=30.0))

    with progress.step(
        f"starting gateway on {gateway_url}", expected=(ServerFailed, httpx.HTTPError)
    ) as step:
        app = create_gateway(
            gateway_settings,
            demo=True,
            demo_data_callback_url=f"{backend_url}/v1/callback/usage",
        )
        _start(stack, app, gateway_sock)
        http.get(f"{gateway_url}/healthz").raise_for_status()
        step.note = f"upstream: {app.state.services.upstream.description}"

    with progress.step(
        f"starting backend on {backend_url}", expected=(ServerFailed, httpx.HTTPError)
    ) as step:
        _start(stack, create_backend(backend_settings, demo_data=True), backend_sock)
        http.get(f"{backend_url}/healthz").raise_for_status()
        step.note = f"demo user {DEMO_USER_USERNAME}, keys for tenant {DEMO_TENANT_ID}"

    with progress.step(
        f"logging in to the backend as {DEMO_USER_USERNAME}", expected=(httpx.HTTPError,)
    ):
        form = {"username": DEMO_USER_USERNAME, "password": DEMO_USER_PASSWORD}
        tokens = _json(http.post(f"{backend_url}{LOGIN_PATH}", data=form))
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}

    with progress.step(
        "getting a dynamic key from the backend", expected=(httpx.HTTPError, DeviceClientError)
    ) as step:
        key = DynamicKey.from_response(
            _json(http.post(f"{backend_url}{KEY_PATH}", headers=auth, json={}))
        )
        lifetime = key.expires_at - int(time.time())
        step.note = (
            f"event id {key.event_id}, model {key.model}, budget {key.max_tokens} tokens, "
            f"valid {lifetime} s"
        )

    with progress.step(
        "streaming a chat completion from the gateway with the OpenAI SDK",
        expected=(openai.APIError,),
        streams=True,
    ) as step:
        usage = _stream_chat(key, prompt)
        step.note = f"{usage.total_tokens} tokens" if usage is not None else "no usage reported"

    with progress.step(
        "waiting for the gateway's usage callback on the backend",
        expected=(httpx.HTTPError,),
        streams=True,
    ) as step:
        started = time.monotonic()
        entry = _wait_for_callback(http, backend_url, auth, key.event_id)
        step.note = f"after {time.monotonic() - started:.1f} s"

    for label, value in (
        ("event id", entry["event_id"]),
        ("tokens", entry["tokens"]),
        ("status", entry.get("status")),
        ("model", entry.get("model")),
        (
            "signature",
            "verified (Standard Webhooks)" if entry.get("signature_verified") else "not checked",
        ),
        ("content", repr(entry.get("content"))),
    ):
        console.print(f"      {label:<10}{escape(str(value))}")
    console.print(
        "[green]round trip complete:[/green] the device called the gateway directly with a "
        "short-lived key, and the backend was told what it used without relaying any traffic."
    )
    return gateway_url, backend_url


def _throwaway_secret() -> str | None:
    """A random SECRET_KEY for this run's throwaway data, unless the operator set one."""
    return None if "SECRET_KEY" in os.environ else secrets.token_urlsafe(32)


def _sqlite(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _reserve(stack: ExitStack, name: str, port: int, option: str) -> socket.socket:
    try:
        sock = bind(HOST, port)
    except PortInUse as exc:
        raise DemoFailed(
            f"cannot start the {name}: {exc}; stop what uses it or choose another port "
            f"with {option} ({option} 0 picks a free one)"
        ) from None
    except ServerFailed as exc:
        raise DemoFailed(f"cannot start the {name}: {exc}") from None
    stack.callback(sock.close)
    return sock


def _start(stack: ExitStack, app: Any, sock: socket.socket) -> None:
    server = BackgroundServer(app, sock)
    stack.callback(server.stop)
    server.start()


def _json(response: httpx.Response) -> Any:
    """The body of a 2xx answer; otherwise the server's own error message."""
    if response.is_success:
        return response.json()
    raise StepFailed(str(error_from_response(response)))


def _stream_chat(key: DynamicKey, prompt: str) -> Any:
    """Stream the answer to stdout as the gateway sends it; return the reported usage."""
    usage = None
    with openai.OpenAI(base_url=key.base_url, api_key=key.token, max_retries=0) as llm:
        chunks = llm.chat.completions.create(
            model=key.model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                text(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
    console.print()
    return usage


def _wait_for_callback(
    http: httpx.Client, backend_url: str, auth: dict[str, str], event_id: str
) -> dict[str, Any]:
    """Poll the backend's usage list until the gateway's callback for ``event_id`` is in."""
    deadline = time.monotonic() + CALLBACK_TIMEOUT_SECONDS
    while True:
        listing = _json(
            http.get(f"{backend_url}/v1/usage", params={"event_id": event_id}, headers=auth)
        )
        if listing["data"]:
            found: dict[str, Any] = listing["data"][0]
            return found
        if time.monotonic() > deadline:
            raise StepFailed(
                f"no usage callback for event {event_id} within {CALLBACK_TIMEOUT_SECONDS:.0f} s"
            )
        time.sleep(0.2)
