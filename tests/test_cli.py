"""The ``dynaseal`` command: help texts, the demo round trip, errors, and ``chat``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dynaseal.backend.app import create_app as create_backend
from dynaseal.backend.settings import BackendSettings
from dynaseal.cli.main import app
from dynaseal.core.original_demo import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from support.databases import fresh_database
from support.servers import free_port, serve

runner = CliRunner()

OFFLINE_TEXT = "Hello from the Dynaseal offline responder"

HELP_MENTIONS = {
    (): ["demo", "gateway", "backend", "chat"],
    ("gateway",): ["--host", "--port", "--demo-data", "--database-url", "--log-level"],
    ("backend",): ["--host", "--port", "--demo-data", "--database-url", "--gateway-url"],
    ("chat",): ["--backend-url", "--username", "--password", "--model", "--no-stream"],
    ("demo",): ["--gateway-port", "--backend-port", "--prompt", "--keep-data"],
}


def run_dynaseal(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    """The real command in a subprocess, as a user runs it (``python -m dynaseal``)."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dynaseal", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("command", list(HELP_MENTIONS), ids=lambda c: " ".join(c) or "root")
def test_help_mentions_every_option(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for word in HELP_MENTIONS[command]:
        assert word in result.output


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "Usage" in result.output
    assert "demo" in result.output


def test_demo_round_trip(tmp_path: Path) -> None:
    result = run_dynaseal("demo", "--gateway-port", "0", "--backend-port", "0", cwd=tmp_path)
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "upstream: offline responder" in output
    assert OFFLINE_TEXT in output
    assert "[6/6]" in output
    assert "round trip complete" in output
    event_id = next(
        line.split()[-1] for line in output.splitlines() if line.strip().startswith("event id")
    )
    tokens = next(
        line.split()[-1] for line in output.splitlines() if line.strip().startswith("tokens")
    )
    # The callback shown is the one of the key the device got.
    assert f"event id {event_id}, model" in output
    assert int(tokens) > 0
    assert "Traceback" not in output + result.stderr
    assert list(tmp_path.iterdir()) == []  # the demo's databases live in a temp dir


def test_demo_names_a_busy_gateway_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_dynaseal(
            "demo", "--gateway-port", str(port), "--backend-port", "0", cwd=tmp_path
        )
    assert result.returncode != 0
    assert f"port {port}" in result.stderr
    assert "--gateway-port" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_invalid_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run_dynaseal("gateway", cwd=tmp_path, env={"ACCESS_TOKEN_EXPIRE_MINUTES": "abc"})
    assert result.returncode == 2
    assert "ACCESS_TOKEN_EXPIRE_MINUTES" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DYNASEAL_ENV": "production"}, "SECRET_KEY"),
        ({"DYNASEAL_ENV": "production", "SECRET_KEY": "short"}, "SECRET_KEY"),
        (
            {"DYNASEAL_ENV": "production", "SECRET_KEY": "k" * 40, "ADMIN_USER_PASSWORD": "admin"},
            "ADMIN_USER_PASSWORD",
        ),
    ],
)
def test_production_mode_refuses_default_or_weak_secrets(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = run_dynaseal("gateway", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert named in result.stderr and "production" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["backend", "demo"])
def test_every_service_command_reports_invalid_settings(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [command], env={"REFRESH_TOKEN_EXPIRE_MINUTES": "-1"})
    assert result.exit_code == 2
    assert "REFRESH_TOKEN_EXPIRE_MINUTES" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway (offline responder, demo tenant) and a backend pointing at it."""
    data = tmp_path_factory.mktemp("cli-chat")
    backend_port = free_port()
    with (
        fresh_database(data, "gateway") as gateway_db,
        fresh_database(data, "backend") as backend_db,
    ):
        gateway = create_gateway(
            GatewaySettings(database_url=gateway_db, openai_base_url=None),
            demo=True,
            demo_data_callback_url=f"http://127.0.0.1:{backend_port}/v1/callback/usage",
        )
        with serve(gateway) as gateway_server:
            backend_settings = BackendSettings(
                database_url=backend_db, gateway_url=gateway_server.url
            )
            with serve(create_backend(backend_settings, demo_data=True), backend_port) as server:
                yield server.url


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_chat_prints_the_answer(backend_url: str, stream: bool) -> None:
    args = ["chat", "What is Dynaseal?", "--backend-url", backend_url]
    env = {"DYNASEAL_USERNAME": DEMO_USER_USERNAME, "DYNASEAL_PASSWORD": DEMO_USER_PASSWORD}
    result = runner.invoke(app, args if stream else [*args, "--no-stream"], env=env)
    assert result.exit_code == 0, result.output
    assert OFFLINE_TEXT in result.output
    assert 'You said: "What is Dynaseal?"' in result.output
    assert "tokens" in result.output


def test_chat_with_a_wrong_password_says_so(backend_url: str) -> None:
    args = ["chat", "hi", "--backend-url", backend_url, "--username", DEMO_USER_USERNAME]
    result = runner.invoke(app, [*args, "--password", "wrong"])
    assert result.exit_code == 1
    assert backend_url in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_chat_without_credentials_exits_2(backend_url: str) -> None:
    result = runner.invoke(
        app,
        ["chat", "hi", "--backend-url", backend_url],
        env={"DYNASEAL_USERNAME": "", "DYNASEAL_PASSWORD": ""},
    )
    assert result.exit_code == 2
    assert "DYNASEAL_USERNAME" in result.output
