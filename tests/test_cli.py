"""The ``dynaseal`` command: help texts, the demo round trip, errors, and ``chat``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dynaseal.backend.app import create_app as create_backend
from dynaseal.backend.settings import BackendSettings
from dynaseal.cli.main import app
from dynaseal.core.original_demo import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from support.commands import run_dynaseal, started
from support.console import ConsoleClient
from support.databases import fresh_database
from support.gateway_process import wait_until
from support.servers import free_port, serve

runner = CliRunner()

OFFLINE_TEXT = "Hello from the Dynaseal offline responder"

HELP_MENTIONS = {
    (): ["demo", "gateway", "backend", "chat"],
    ("gateway",): ["--host", "--port", "--demo-data", "--database-url", "--log-level"],
    ("backend",): ["--host", "--port", "--demo-data", "--database-url", "--gateway-url"],
    ("chat",): ["--backend-url", "--username", "--password", "--model", "--no-stream"],
    ("demo",): [
        "--gateway-port",
        "--backend-port",
        "--prompt",
        "--keep-data",
        "--keep-running",
        "--bind",
    ],
    ("admin",): ["login", "tenants", "keys", "revoke", "usage", "--gateway-url"],
    ("admin", "tenants"): ["create", "list", "show", "disable", "enable"],
    ("admin", "keys"): ["create", "list", "retire", "revoke"],
    ("backend", "create-user"): ["--password", "--email", "--model", "--database-url"],
}


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
    assert re.search(
        r"gateway console: http://127\.0\.0\.1:\d+/console .*user1, password user1", output
    )
    assert re.search(r"backend console: http://127\.0\.0\.1:\d+/console .*client1", output)
    assert "Traceback" not in output + result.stderr
    assert list(tmp_path.iterdir()) == []  # the demo's databases live in a temp dir


def test_demo_bind_shows_a_bound_key_a_child_key_and_a_copied_key_refused(
    tmp_path: Path,
) -> None:
    result = run_dynaseal(
        "demo", "--gateway-port", "0", "--backend-port", "0", "--bind", cwd=tmp_path
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "round trip complete" in output  # the plain demo first, unchanged
    assert re.search(r"\[1/3\] calling the gateway with a key bound .* ok \(cnf\.jkt ", output)
    assert re.search(r"\[2/3\] deriving a child key .* ok \(event id child_", output)
    assert re.search(
        r"\[3/3\] using a copy of the bound key .* ok \(refused: 401, DPoP .*invalid_dpop_proof",
        output,
    )
    assert "Traceback" not in output + result.stderr


def test_demo_keeps_running_for_the_consoles(tmp_path: Path) -> None:
    """What the README says: `dynaseal demo --keep-running`, then log in to the console
    with the demo tenant's login it printed; Ctrl-C ends it cleanly."""
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynaseal",
            "demo",
            "--gateway-port",
            "0",
            "--backend-port",
            "0",
            "--keep-running",
        ],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines = iter(demo.stdout.readline, "")
        printed = next(line for line in lines if line.startswith("gateway console:"))
        url, username, password = re.search(
            r"(http://\S+/console) .*tenant (\S+), password (\S+)\)", printed
        ).groups()
        assert "running until Ctrl-C" in next(line for line in lines if "Ctrl-C" in line)
        client = ConsoleClient(url.removesuffix("/console"))
        assert client.login(username, password).status_code == 303
        assert "Signing keys" in client.get("/keys").text
        client.close()
    finally:
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, out + err
    assert "Traceback" not in out + err


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


def test_flags_are_offered_without_a_value() -> None:
    result = runner.invoke(app, ["gateway", "--help"], terminal_width=200)
    (row,) = [line for line in result.output.splitlines() if "--demo-data" in line]
    assert "bool" not in row  # `--demo-data`, never `--demo-data <bool>`
    given_a_value = runner.invoke(app, ["gateway", "--demo-data", "true", "--port", "-1"])
    assert given_a_value.exit_code == 2


def test_help_and_version_do_not_load_the_services(tmp_path: Path) -> None:
    """What makes `dynaseal --help` slow is importing FastAPI, SQLAlchemy, the OpenAI SDK
    ...: the command line must load them only when a command needs them."""
    probe = (
        "import sys; import dynaseal.cli.main\n"
        "heavy = {'fastapi', 'sqlalchemy', 'openai', 'httpx', 'uvicorn', 'pydantic', 'alembic'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert run_dynaseal("--version", cwd=tmp_path).stdout.strip().startswith("dynaseal ")


def test_the_demo_backend_on_another_port_gets_the_callbacks(tmp_path: Path) -> None:
    gateway_port, backend_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    backend_url = f"http://127.0.0.1:{backend_port}"
    with started("gateway", "--demo-data", "--port", str(gateway_port), cwd=tmp_path) as gateway:
        gateway.wait_ready(gateway_url + "/readyz")
        with started(
            "backend",
            "--demo-data",
            "--port",
            str(backend_port),
            cwd=tmp_path,
            env={"GATEWAY_URL": gateway_url},
        ) as backend:
            backend.wait_ready(backend_url + "/healthz")
            env = {"DYNASEAL_USERNAME": DEMO_USER_USERNAME, "DYNASEAL_PASSWORD": DEMO_USER_PASSWORD}
            asked = run_dynaseal("chat", "hi", "--backend-url", backend_url, cwd=tmp_path, env=env)
            assert asked.returncode == 0, asked.stderr
            token = httpx.post(
                backend_url + "/v1/user/login",
                data={"username": DEMO_USER_USERNAME, "password": DEMO_USER_PASSWORD},
            ).json()["access_token"]

            def received() -> int:
                usage = httpx.get(
                    backend_url + "/v1/usage", headers={"Authorization": f"Bearer {token}"}
                )
                return usage.json()["total_tokens"]

            assert wait_until(received, timeout=30) > 0
