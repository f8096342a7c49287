"""The device client against a real backend and a stand-in gateway on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dynaseal.backend.demo_data import (
    DEMO_TENANT_API_KEY,
    DEMO_TENANT_ID,
    DEMO_USER_PASSWORD,
    DEMO_USER_USERNAME,
)
from dynaseal.client import AsyncDeviceClient, DeviceClient, DeviceClientError
from dynaseal.keys import DEFAULT_AUDIENCE, VerificationKey, mint_key, peek_key, verify_key
from support.devices import _fresh_stand_in, backend_url, stand_in
from support.servers import serve
from support.stand_in_gateway import StandInGateway

__all__ = ["_fresh_stand_in", "backend_url", "stand_in"]  # fixtures used here


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
    device: DeviceClient, stand_in: StandInGateway
) -> None:
    key = device.get_key(max_tokens=20)
    assert key.model == "deepseek-chat" and key.models == ("deepseek-chat",)
    assert key.max_tokens == 20 and key.jkt is None
    assert key.base_url == f"{stand_in.url}/v1"
    grant = verify_key(
        peek_key(key.token),
        [VerificationKey("k", "HS256", DEMO_TENANT_API_KEY.encode())],
        audience=DEFAULT_AUDIENCE,
        now=time.time(),
    )
    assert grant.event_id == key.event_id and grant.max_tokens == 20


def test_the_token_stays_out_of_reprs(device: DeviceClient) -> None:
    key = device.get_key()
    assert key.token not in repr(key) and key.event_id in repr(key)


def test_current_key_is_kept_until_it_expires(device: DeviceClient) -> None:
    first = device.current_key()
    assert device.current_key() is first
    first.expires_at = int(time.time()) + 5  # inside the renewal margin
    renewed = device.current_key()
    assert renewed.event_id != first.event_id


def test_the_password_is_forgotten_after_login(device: DeviceClient) -> None:
    device.login()
    assert device._session._password is None  # the refresh token carries on
    device._session.access_token = "expired"  # what an old access token looks like
    assert device.get_key().token  # refreshed with the refresh token
    device._session.refresh_token = device._session.access_token = "expired"
    with pytest.raises(DeviceClientError) as refused:
        device.get_key()
    assert refused.value.status == 401 and "password" in refused.value.message


def test_a_password_function_is_asked_again_when_the_refresh_fails(backend_url: str) -> None:
    asked: list[float] = []

    def password() -> str:
        asked.append(time.time())
        return DEMO_USER_PASSWORD

    with DeviceClient(backend_url, DEMO_USER_USERNAME, password) as device:
        assert device.get_key().token and len(asked) == 1
        device._session.refresh_token = device._session.access_token = "expired"
        assert device.get_key().token  # refresh refused, so it logged in again
        assert len(asked) == 2


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
    device: DeviceClient, stand_in: StandInGateway
) -> None:
    llm = device.openai()
    assert str(llm.base_url) == f"{stand_in.url}/v1/"
    assert chat(llm) == "hi"
    first = device.key
    assert first is not None and stand_in.seen[-1] == first.token

    first.expires_at = int(time.time())  # expired: the next request carries a new key
    assert chat(llm) == "hi"
    second = device.key
    assert second is not None and second.token != first.token
    assert stand_in.seen[-1] == second.token
    llm.close()


def test_a_spent_key_is_renewed_and_the_call_retried_once(
    device: DeviceClient, stand_in: StandInGateway
) -> None:
    llm = device.openai()
    assert chat(llm) == "hi"
    spent = device.key
    assert spent is not None
    stand_in.spent.add(spent.token)
    before = len(stand_in.seen)
    assert chat(llm) == "hi"  # transparently: no error reaches the caller
    assert stand_in.seen[before:] == [spent.token, device.key.token]  # type: ignore[union-attr]
    assert spent.spent and device.key is not spent


def test_a_spent_refusal_is_retried_once_only(
    device: DeviceClient, stand_in: StandInGateway
) -> None:
    """Neither the client nor the OpenAI SDK (max_retries=2 by default) tries again:
    the gateway sends no ``x-should-retry: false`` here, the client does not need it."""
    llm = device.openai()
    assert chat(llm) == "hi"
    stand_in.spend_everything = True
    before = len(stand_in.seen)
    with pytest.raises(openai.RateLimitError):
        chat(llm)
    assert len(stand_in.seen) == before + 2


async def test_async_client_renews_a_spent_key(backend_url: str, stand_in: StandInGateway) -> None:
    async with AsyncDeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD) as device:
        llm = await device.openai()
        messages: Any = [{"role": "user", "content": "hello"}]
        await llm.chat.completions.create(model="deepseek-chat", messages=messages)
        spent = device.key
        assert spent is not None and stand_in.seen[-1] == spent.token
        stand_in.spent.add(spent.token)
        reply = await llm.chat.completions.create(model="deepseek-chat", messages=messages)
        assert reply.choices[0].message.content == "hi"
        assert stand_in.seen[-2:] == [spent.token, device.key.token]  # type: ignore[union-attr]
        stand_in.spend_everything = True
        before = len(stand_in.seen)
        with pytest.raises(openai.RateLimitError):
            await llm.chat.completions.create(model="deepseek-chat", messages=messages)
        assert len(stand_in.seen) == before + 2
        await llm.close()


# --- which gateways a key may be sent to (issue 12, finding 8) ---------------------------


class NamingBackend:
    """A backend that names whatever gateway the test says (as a compromised one may)."""

    def __init__(self) -> None:
        self.base_url = ""
        self.bind = True

    async def login(self, _: Request) -> JSONResponse:
        return JSONResponse({"access_token": "a", "refresh_token": "r", "token_type": "bearer"})

    async def create_key(self, request: Request) -> JSONResponse:
        asked = (await request.json()).get("dpop_jkt")
        minted = mint_key(
            DEMO_TENANT_API_KEY,
            tenant_id=DEMO_TENANT_ID,
            model="deepseek-chat",
            max_tokens=50,
            cnf_jkt=asked if self.bind else None,
        )
        return JSONResponse(
            {
                "token": minted.token,
                "event_id": minted.event_id,
                "model": "deepseek-chat",
                "max_tokens": 50,
                "expires_at": minted.expires_at,
                "base_url": self.base_url,
            }
        )


@pytest.fixture(scope="module")
def naming() -> Iterator[tuple[NamingBackend, str]]:
    backend = NamingBackend()
    app = Starlette(
        routes=[
            Route("/v1/user/login", backend.login, methods=["POST"]),
            Route("/v1/key/create", backend.create_key, methods=["POST"]),
        ]
    )
    with serve(app) as server:
        yield backend, server.url


@pytest.fixture(scope="module")
def second_gateway() -> Iterator[StandInGateway]:
    fake = StandInGateway()
    with serve(fake.app()) as server:
        fake.url = server.url.replace("127.0.0.1", "localhost")
        yield fake


@pytest.mark.parametrize(
    "base_url",
    [
        "http://gateway.example/v1",  # plain http off loopback
        "http://127.0.0.1.evil.example/v1",
        "https://user:pw@gateway.example/v1",
        "https://gateway.example/v1?x=1",
        "ftp://gateway.example/v1",
        "not a url",
    ],
)
def test_an_unsafe_gateway_url_is_refused(naming: tuple[NamingBackend, str], base_url: str) -> None:
    backend, url = naming
    backend.base_url = base_url
    with DeviceClient(url, "u", "p") as device, pytest.raises(DeviceClientError, match="gateway"):
        device.get_key()


def test_without_configuration_the_first_gateway_is_pinned(
    naming: tuple[NamingBackend, str],
) -> None:
    backend, url = naming
    with DeviceClient(url, "u", "p") as device:
        backend.base_url = "https://gateway.example/v1"
        assert device.get_key().base_url == "https://gateway.example/v1"
        backend.base_url = "https://GATEWAY.example:443/api/v1"  # same origin, new path
        assert device.get_key().base_url == "https://GATEWAY.example:443/api/v1"
        backend.base_url = "https://evil.example/v1"
        with pytest.raises(DeviceClientError, match="not among the allowed"):
            device.get_key()
        assert device.key is not None and device.key.base_url.endswith("/api/v1")


def test_configured_origins_are_enforced_from_the_first_key(
    naming: tuple[NamingBackend, str],
) -> None:
    backend, url = naming
    backend.base_url = "https://gateway.example/v1"
    allowed = ["https://gw-1.example", "https://gw-2.example:8443"]
    with DeviceClient(url, "u", "p", gateway_origins=allowed) as device:
        with pytest.raises(DeviceClientError, match="not among the allowed"):
            device.get_key()
        backend.base_url = "https://gw-2.example:8443/v1"
        assert device.get_key().base_url == "https://gw-2.example:8443/v1"
    with pytest.raises(ValueError):
        DeviceClient(url, "u", "p", gateway_origins=["http://gw.example"])


@pytest.mark.parametrize("bind", [False, True], ids=["bearer", "bound"])
def test_a_renewed_key_naming_another_allowed_gateway_is_followed(
    naming: tuple[NamingBackend, str],
    stand_in: StandInGateway,
    second_gateway: StandInGateway,
    bind: bool,
) -> None:
    backend, url = naming
    backend.base_url = f"{stand_in.url}/v1"
    origins = [stand_in.url, second_gateway.url]
    with DeviceClient(url, "u", "p", gateway_origins=origins, bind=bind) as device:
        llm = device.openai()
        assert chat(llm) == "hi" and len(stand_in.charged) == 1
        backend.base_url = f"{second_gateway.url}/v1"
        stand_in.spent.add(device.key.token)  # type: ignore[union-attr]
        assert chat(llm) == "hi"  # renewed on the spot: the retry goes to the new gateway
        assert len(second_gateway.charged) == 1 and not second_gateway.refused
        assert chat(llm) == "hi" and len(second_gateway.charged) == 2
        assert str(llm.base_url) == f"{second_gateway.url}/v1/"
    second_gateway.reset()


def test_a_bearer_key_is_refused_when_a_bound_one_was_asked_for(
    naming: tuple[NamingBackend, str],
) -> None:
    backend, url = naming
    backend.base_url, backend.bind = "https://gateway.example/v1", False
    try:
        with (
            DeviceClient(url, "u", "p", bind=True) as device,
            pytest.raises(DeviceClientError, match="not bound"),
        ):
            device.get_key()
    finally:
        backend.bind = True


def test_the_binding_is_read_from_the_token_itself(naming: tuple[NamingBackend, str]) -> None:
    """The binding is read from the token, not from what the response says about it."""
    backend, url = naming
    backend.base_url = "https://gateway.example/v1"
    with DeviceClient(url, "u", "p", bind=True) as device:
        key = device.get_key()  # this backend does not echo dpop_jkt
        assert device.device_key is not None and key.jkt == device.device_key.jkt
        cnf = jwt.decode(key.token, options={"verify_signature": False})["cnf"]
        assert cnf == {"jkt": device.device_key.jkt}
