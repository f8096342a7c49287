"""The device client against a real backend and a stand-in gateway on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dynaseal.backend import BackendSettings, create_app
from dynaseal.backend.demo_data import (
    DEMO_TENANT_API_KEY,
    DEMO_USER_PASSWORD,
    DEMO_USER_USERNAME,
)
from dynaseal.client import AsyncDeviceClient, DeviceClient, DeviceClientError
from dynaseal.keys import DEFAULT_AUDIENCE, VerificationKey, peek_key, verify_key
from support.databases import fresh_database
from support.servers import serve


@dataclass
class FakeGateway:
    """Answers chat completions, or refuses keys the test declared spent."""

    url: str = ""
    spent: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)

    async def chat(self, request: Request) -> JSONResponse:
        token = request.headers["authorization"].removeprefix("Bearer ")
        self.seen.append(token)
        if token in self.spent:
            error = {
                "message": "key budget spent",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
            return JSONResponse(
                {"error": error},
                status_code=429,
                headers={"x-dynaseal-refusal": "insufficient_quota"},
            )
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "deepseek-chat",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hi"},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.chat, methods=["POST"])])
    with serve(app) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory, gateway: FakeGateway) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("client"), "backend") as url:
        settings = BackendSettings(
            database_url=url,
            secret_key="test-secret-key-for-backend-sessions",
            gateway_url=gateway.url,
            llm_key=None,  # sign for the demo tenant whatever the environment says
            llm_user_id=None,
            llm_key_id=None,
        )
        with serve(create_app(settings, demo_data=True)) as server:
            yield server.url


@pytest.fixture
def device(backend_url: str) -> Iterator[DeviceClient]:
    with DeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD) as client:
        yield client


def chat(llm: openai.OpenAI) -> str | None:
    reply = llm.chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": "hello"}]
    )
    return reply.choices[0].message.content


def test_get_key_returns_a_key_signed_for_the_demo_tenant(
    device: DeviceClient, gateway: FakeGateway
) -> None:
    key = device.get_key(max_tokens=20)
    assert key.model == "deepseek-chat" and key.models == ("deepseek-chat",)
    assert key.max_tokens == 20
    assert key.base_url == f"{gateway.url}/v1"
    grant = verify_key(
        peek_key(key.token),
        [VerificationKey("k", "HS256", DEMO_TENANT_API_KEY.encode())],
        audience=DEFAULT_AUDIENCE,
        now=time.time(),
    )
    assert grant.event_id == key.event_id and grant.max_tokens == 20


def test_current_key_is_kept_until_it_expires(device: DeviceClient) -> None:
    first = device.current_key()
    assert device.current_key() is first
    first.expires_at = int(time.time()) + 5  # inside the renewal margin
    renewed = device.current_key()
    assert renewed.event_id != first.event_id


def test_expired_login_is_refreshed(device: DeviceClient) -> None:
    device.login()
    device._session.access_token = "expired"  # what an old access token looks like
    assert device.get_key().token
    device._session.refresh_token = "expired"
    device._session.access_token = "expired"
    assert device.get_key().token  # refresh refused, so it logged in again


def test_backend_refusals_raise_device_client_error(backend_url: str) -> None:
    with DeviceClient(backend_url, DEMO_USER_USERNAME, "wrong") as bad:
        with pytest.raises(DeviceClientError) as refused:
            bad.get_key()
        assert refused.value.status == 401
    with DeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD) as good:
        with pytest.raises(DeviceClientError) as refused:
            good.get_key(max_tokens=10**6)
        assert refused.value.status == 403 and "budget" in refused.value.message
    with DeviceClient("http://127.0.0.1:9", "u", "p", timeout=2) as nowhere:
        with pytest.raises(DeviceClientError) as unreachable:
            nowhere.login()
        assert unreachable.value.status is None


def test_openai_client_uses_the_gateway_and_renews_keys(
    device: DeviceClient, gateway: FakeGateway
) -> None:
    llm = device.openai()
    assert str(llm.base_url) == f"{gateway.url}/v1/"
    assert chat(llm) == "hi"
    first = device.key
    assert first is not None and gateway.seen[-1] == first.token

    first.expires_at = int(time.time())  # expired: the next request carries a new key
    assert chat(llm) == "hi"
    second = device.key
    assert second is not None and second.token != first.token
    assert gateway.seen[-1] == second.token

    gateway.spent.add(second.token)
    calls_before = len(gateway.seen)
    with pytest.raises(openai.RateLimitError):
        chat(llm)
    assert len(gateway.seen) == calls_before + 1  # the refused call is not retried
    assert second.spent

    assert chat(llm) == "hi"
    assert gateway.seen[-1] not in (first.token, second.token)
    llm.close()


async def test_async_client_renews_a_spent_key(backend_url: str, gateway: FakeGateway) -> None:
    async with AsyncDeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD) as device:
        llm = await device.openai()
        messages = [{"role": "user", "content": "hello"}]
        await llm.chat.completions.create(model="deepseek-chat", messages=messages)
        spent = device.key
        assert spent is not None and gateway.seen[-1] == spent.token
        gateway.spent.add(spent.token)
        with pytest.raises(openai.RateLimitError):
            await llm.chat.completions.create(model="deepseek-chat", messages=messages)
        reply = await llm.chat.completions.create(model="deepseek-chat", messages=messages)
        assert reply.choices[0].message.content == "hi"
        assert gateway.seen[-1] != spent.token
        await llm.close()
