"""Starting the services as an operator does: ``--workers`` on an empty PostgreSQL
database, logs from every worker, and one clear line with a non-zero exit for anything
that keeps a service from serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dynaseal.core.original_demo import DEMO_TENANT_ID
from support.commands import run_dynaseal, started
from support.databases import fresh_database
from support.servers import free_port
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL, event_of, login, original_key

SUPPORT = Path(__file__).parent / "support"


def json_lines(log: str) -> list[dict]:
    """Every line of a LOG_FORMAT=json log, parsed (fails on a line that is not JSON)."""
    return [json.loads(line) for line in log.splitlines() if line.strip()]


def test_four_workers_start_on_an_empty_postgresql_database(tmp_path: Path) -> None:
    port = free_port()
    with fresh_database(tmp_path, "workers", kind="postgresql") as database_url:
        env = {
            "DATABASE_URL": database_url,
            "ADMIN_USER_PASSWORD": ADMIN_PASSWORD,
            "LOG_FORMAT": "json",
        }
        args = ("gateway", "--port", str(port), "--workers", "4", "--demo-data")
        with started(*args, cwd=tmp_path, env=env) as gateway:
            url = f"http://127.0.0.1:{port}"
            gateway.wait_ready(url + "/readyz")
            login(url, "admin", ADMIN_PASSWORD)
            key = original_key(max_tokens=100_000)
            for _ in range(8):
                answer = httpx.post(
                    url + "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": DEMO_MODEL, "messages": [{"role": "user", "content": "hi"}]},
                )
                assert answer.status_code == 200, answer.text
            refused = httpx.post(
                url + "/v1/chat/completions", headers={"Authorization": "Bearer x.y.z"}, json={}
            )
            assert refused.status_code == 401
            exit_status = gateway.stop()
        lines = json_lines(gateway.log)
    assert exit_status == 0, gateway.log
    messages = [line["message"] for line in lines]
    assert not any("died" in m or "Traceback" in m for m in messages), gateway.log
    workers = {line["pid"] for line in lines if line["message"].startswith("Started server")}
    assert len(workers) == 4  # every worker logs
    assert all(line["time"][:4].isdigit() and "T" in line["time"] for line in lines)
    served = [line for line in lines if line.get("path") == "/v1/chat/completions"]
    completed = [line for line in served if line["status"] == 200]
    assert len(completed) == 8
    assert {(line["tenant"], line["event_id"]) for line in completed} == {
        (DEMO_TENANT_ID, event_of(key))
    }
    assert all(line["tokens"] > 0 and line["request_id"].startswith("req_") for line in completed)
    (denied,) = [line for line in served if line["status"] == 401]
    assert denied["refusal"] == "invalid_key" and denied["refusal_reason"]
    reason = next(line for line in lines if line["message"].startswith("dynamic key refused"))
    assert reason["request_id"] == denied["request_id"]  # the why, tied to its request


def test_a_worker_that_cannot_start_makes_the_command_fail(tmp_path: Path) -> None:
    # uvicorn's supervisor stops when a worker fails its start-up, and returns normally.
    script = (
        "from dynaseal.cli.servers import ServerFailed, bind, run_foreground\n"
        "from dynaseal.core.logs import configure_logging\n"
        "configure_logging('info')\n"
        "try:\n"
        "    run_foreground('failing_app:create', bind('127.0.0.1', 0), 'info', workers=2)\n"
        "except ServerFailed as exc:\n"
        "    raise SystemExit(f'failed: {exc}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SUPPORT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "failed: a worker could not start" in result.stderr
    assert "the start-up of this app always fails" in result.stderr


def test_redis_down_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "STARTUP_TIMEOUT_SECONDS": "1"}
    result = run_dynaseal("gateway", "--port", "0", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "cannot start the gateway: Redis is not reachable after 1 s" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) < 10


def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        "STARTUP_TIMEOUT_SECONDS": "1",
    }
    result = run_dynaseal("gateway", "--port", "0", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "the database at postgresql" in result.stderr and "not reachable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        ("gateway", {"CORS_ORIGINS": '["http://localhost:3000"'}, "CORS_ORIGINS"),
        ("gateway", {"CALLBACK_RETRY_SCHEDULE_SECONDS": "1,soon"}, "CALLBACK_RETRY"),
        ("gateway", {"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ("gateway", {"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ("backend", {"LLM_KEY": "secret"}, "LLM_USER_ID"),
        ("backend", {"LLM_USER_ID": "671249a93f1cf2f8bf9b2b82"}, "LLM_KEY"),
    ],
)
def test_configuration_mistakes_are_one_line_naming_the_variable(
    command: str, env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = run_dynaseal(command, "--port", "0", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) < 6


def test_list_settings_accept_comma_separated_values(tmp_path: Path) -> None:
    env = {
        "DEFAULT_MODELS": "gpt-4o-mini",
        "CORS_ORIGINS": "http://localhost:3000,https://app.example",
        "CALLBACK_RETRY_SCHEDULE_SECONDS": "1, 5, 30",
    }
    for service in ("gateway", "backend"):
        result = run_dynaseal(service, "migrate", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    created = run_dynaseal(
        "backend",
        "create-user",
        "alice",
        "--password",
        "alice-password",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["policy"]["models"] == ["gpt-4o-mini"]


def test_create_user_then_the_device_logs_in(tmp_path: Path) -> None:
    made = run_dynaseal(
        "backend",
        "create-user",
        "bob",
        "--email",
        "bob@example.com",
        "--model",
        "m1",
        cwd=tmp_path,
        env={"DYNASEAL_PASSWORD": "bob-password"},
    )
    assert made.returncode == 0 and "created user bob" in made.stdout, made.stderr
    again = run_dynaseal("backend", "create-user", "bob", "--password", "x", cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr
    port = free_port()
    with started("backend", "--port", str(port), cwd=tmp_path) as backend:
        url = f"http://127.0.0.1:{port}"
        backend.wait_ready(url + "/healthz")
        tokens = httpx.post(
            url + "/v1/user/login", data={"username": "bob@example.com", "password": "bob-password"}
        )
        assert tokens.status_code == 200, tokens.text
