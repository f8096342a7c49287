"""The whole flow on loopback: real backend, real gateway, an OpenAI-compatible upstream,
and the official OpenAI SDK as the device — as the original design's walkthrough does it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.client import DeviceClient
from dynaseal.core.original_demo import (
    DEMO_TENANT_PASSWORD,
    DEMO_TENANT_USERNAME,
    DEMO_USER_EMAIL,
    DEMO_USER_PASSWORD,
    DEMO_USER_USERNAME,
)
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from support.databases import fresh_database
from support.servers import free_port, serve
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Hello, who are you?"}]


@dataclass
class System:
    gateway_url: str
    backend_url: str
    upstream: FakeUpstream


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[System]:
    data: Path = tmp_path_factory.mktemp("e2e")
    backend_port = free_port()
    gateway_port = free_port()
    with (
        fresh_database(data, "gateway") as gateway_db,
        fresh_database(data, "backend") as backend_db,
    ):
        gateway = create_gateway(
            GatewaySettings(
                database_url=gateway_db,
                openai_base_url=f"{upstream.url}/v1",
            ),
            demo=True,
            demo_data_callback_url=f"http://127.0.0.1:{backend_port}/v1/callback/usage",
        )
        backend = create_backend(
            BackendSettings(
                database_url=backend_db, gateway_url=f"http://127.0.0.1:{gateway_port}"
            ),
            demo_data=True,
        )
        with serve(gateway, gateway_port) as g, serve(backend, backend_port) as b:
            yield System(g.url, b.url, upstream)


def wait_for_usage(system: System, access_token: str, event_id: str, count: int = 1) -> dict:
    deadline = time.monotonic() + 10
    while True:
        usage = httpx.get(
            system.backend_url + "/v1/usage",
            params={"event_id": event_id},
            headers={"Authorization": f"Bearer {access_token}"},
        ).json()
        if len(usage["data"]) >= count or time.monotonic() > deadline:
            return usage
        time.sleep(0.05)


def test_original_device_flow_unchanged(system: System, capfd: pytest.CaptureFixture[str]) -> None:
    login = httpx.post(
        system.backend_url + "/user/login",
        data={"username": DEMO_USER_EMAIL, "password": DEMO_USER_PASSWORD},
    )
    assert login.status_code == 200
    access_token = login.json()["access_token"]
    created = httpx.post(
        system.backend_url + "/api/v1/key/create",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert created.status_code == 200
    key = created.json()
    assert key["base_url"] == system.gateway_url + "/v1"

    device = openai.OpenAI(base_url=system.gateway_url + "/api/v1", api_key=key["token"])
    stream = device.chat.completions.create(model=key["model"], messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7 "

    usage = wait_for_usage(system, access_token, key["event_id"])
    [entry] = usage["data"]
    assert entry["tokens"] == 19 and entry["content"] == text and entry["status"] == "completed"
    assert text not in capfd.readouterr().out  # the conversation stays out of the log


def test_device_client_streams_and_renews_a_spent_key(system: System) -> None:
    with DeviceClient(system.backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD) as device:
        first = device.get_key(max_tokens=16)  # room for exactly two 8-token answers
        llm = device.openai()
        assert llm.chat.completions.create(model=first.model, messages=MESSAGES).choices
        answer = llm.chat.completions.create(model=first.model, messages=MESSAGES, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        # The gateway says the key is spent: the client gets a fresh key and sends the
        # call again, so the caller sees an answer, not the 429.
        again = llm.chat.completions.create(model=first.model, messages=MESSAGES)
        assert again.choices[0].message.content
        assert first.spent and device.key.event_id != first.event_id


def test_logins_do_not_cross_services(system: System) -> None:
    backend_login = httpx.post(
        system.backend_url + "/v1/user/login",
        data={"username": DEMO_USER_USERNAME, "password": DEMO_USER_PASSWORD},
    ).json()
    gateway_login = httpx.post(
        system.gateway_url + "/v1/user/login",
        data={"username": DEMO_TENANT_USERNAME, "password": DEMO_TENANT_PASSWORD},
    ).json()
    as_dynamic_key = httpx.post(
        system.gateway_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {backend_login['access_token']}"},
        json={"model": "deepseek-chat", "messages": MESSAGES},
    )
    assert as_dynamic_key.status_code == 401
    on_backend = httpx.post(
        system.backend_url + "/v1/key/create",
        headers={"Authorization": f"Bearer {gateway_login['access_token']}"},
    )
    assert on_backend.status_code == 401
