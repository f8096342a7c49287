"""Where budgets are reserved: in the process's memory (one gateway on a SQLite file), in
the database (several processes), and how each carries on after a restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dynaseal.core.settings import ConfigError
from dynaseal.gateway.app import create_app
from dynaseal.gateway.services import GatewayServices
from dynaseal.gateway.settings import GatewaySettings
from support.gateway_process import GatewayProcesses
from support.servers import free_port, serve
from support.tenants import DEMO_MODEL, mint
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]


def settings(database: str, upstream: FakeUpstream, **extra: object) -> GatewaySettings:
    return GatewaySettings(
        database_url=database,
        openai_base_url=f"{upstream.url}/v1",
        **extra,  # type: ignore[arg-type]
    )


def chat(url: str, key: str) -> int:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 10},
        timeout=10,
    ).status_code


def test_memory_budget_carries_on_after_a_restart(tmp_path: Path, upstream: FakeUpstream) -> None:
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    key = mint(max_tokens=40)  # four requests generating 8 fit (the 5th asks 10 of 8)
    with serve(create_app(settings(database, upstream), demo=True)) as gateway:
        assert [chat(gateway.url, key) for _ in range(3)] == [200, 200, 200]
    # The stop wrote every settled request; the new process starts from the database.
    with serve(create_app(settings(database, upstream), demo=True)) as gateway:
        assert [chat(gateway.url, key) for _ in range(3)] == [200, 429, 429]
    assert upstream.count == 4


def test_a_second_gateway_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    with serve(create_app(GatewaySettings(database_url=database))):
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "dynaseal",
                "gateway",
                "--port",
                str(free_port()),
                "--database-url",
                database,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert second.returncode != 0
    assert "another gateway process is using the SQLite database" in second.stderr
    assert "BUDGET_STORE=database" in second.stderr
    assert "Traceback" not in second.stderr


async def test_database_budget_is_shared_by_processes_on_one_sqlite_file(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    processes = GatewayProcesses(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "BUDGET_STORE": "database",
        }
    )
    try:
        ports = [free_port(), free_port()]
        for port in ports:
            processes.start(port, "http://127.0.0.1:9/unused")
        key = mint(max_requests=1)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        statuses = await asyncio.gather(
            *(asyncio.to_thread(chat, urls[i % 2], key) for i in range(20))
        )
        seen = httpx.get(urls[1] + "/v1/key", headers={"Authorization": f"Bearer {key}"}).json()
    finally:
        processes.close()
    assert sorted(statuses) == [200] + [429] * 19
    assert upstream.count == 1
    # The row both processes reserve in: one request made, its 8 tokens booked.
    assert seen["requests"] == {"limit": 1, "used": 1, "remaining": 0}
    assert seen["budgets"]["max_tokens"]["used"] == 8
    assert seen["budgets"]["max_tokens"]["reserved"] == 0


def test_memory_store_needs_sqlite() -> None:
    with pytest.raises(ConfigError, match="BUDGET_STORE"):
        GatewayServices.build(
            GatewaySettings(database_url="postgresql://nobody@127.0.0.1:1/x", budget_store="memory")
        )


def test_usage_that_cannot_be_written_stops_new_requests(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """A ledger backlog (the database gone) means 503, not service with usage in memory."""
    app = create_app(settings(f"sqlite:///{tmp_path / 'gateway.db'}", upstream), demo=True)
    with serve(app) as gateway:
        ledger = app.state.services.ledger
        key = mint()
        assert chat(gateway.url, key) == 200
        ledger._max_backlog = 0  # as if the database had stopped taking writes
        try:
            refused = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": DEMO_MODEL, "messages": MESSAGES},
            )
            ready = httpx.get(gateway.url + "/readyz")
        finally:
            ledger._max_backlog = 10_000
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert ready.status_code == 503 and "not yet written" in ready.json()["checks"]["ledger"]
    assert upstream.count == 1
