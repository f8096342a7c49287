"""Device-bound keys and child keys through the device client (issue 17), against the
real backend and a stand-in gateway that checks keys, chains and DPoP proofs."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest

from dynaseal.backend.demo_data import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from dynaseal.client import AsyncDeviceClient, DeviceClient, DeviceClientError, DeviceKey
from dynaseal.keys import key_thumbprint, make_dpop_proof, mint_child_key, peek_key
from support.devices import _fresh_stand_in, backend_url, stand_in
from support.stand_in_gateway import StandInGateway

__all__ = ["_fresh_stand_in", "backend_url", "stand_in"]  # fixtures used here

MESSAGES: Any = [{"role": "user", "content": "hello"}]


@pytest.fixture
def device(backend_url: str) -> Iterator[DeviceClient]:
    with DeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD, bind=True) as client:
        yield client


def chat(llm: openai.OpenAI) -> str | None:
    reply = llm.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    return reply.choices[0].message.content


def test_a_bound_device_proves_possession_on_every_request(
    device: DeviceClient, stand_in: StandInGateway
) -> None:
    key = device.current_key()
    assert device.device_key is not None and key.jkt == device.device_key.jkt
    assert peek_key(key.token).claims["cnf"] == {"jkt": device.device_key.jkt}
    llm = device.openai()
    assert [chat(llm) for _ in range(3)] == ["hi"] * 3
    assert not stand_in.refused and len(stand_in.proofs) == 3
    jtis = {jwt.decode(p, options={"verify_signature": False})["jti"] for p in stand_in.proofs}
    assert len(jtis) == 3  # a fresh proof each time
    assert repr(device.device_key).startswith("DeviceKey(EdDSA, jkt=")


def test_a_copied_bound_key_is_useless_without_the_device_key(
    device: DeviceClient, stand_in: StandInGateway
) -> None:
    assert chat(device.openai()) == "hi"
    stolen = device.current_key()
    url = f"{stolen.base_url}/chat/completions"
    thief = openai.OpenAI(api_key=stolen.token, base_url=stolen.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        chat(thief)
    assert "invalid_dpop_proof" in refused.value.response.headers["www-authenticate"]
    body = {"model": "deepseek-chat", "messages": MESSAGES}
    own = make_dpop_proof(
        DeviceKey.generate().private_key, "POST", url, stolen.token, now=time.time()
    )
    captured = stand_in.proofs[-1]  # a proof the device already used
    for proof in (own, captured):
        answer = httpx.post(
            url, json=body, headers={"Authorization": f"Bearer {stolen.token}", "DPoP": proof}
        )
        assert answer.status_code == 401
    assert stand_in.refused[-3:] == [
        "a bound key needs exactly one DPoP header, got 0",
        "proof signed by a key other than the one the token is bound to",
        "proof replayed",
    ]
    assert len(stand_in.charged) == 1  # only the device's own request


def test_the_key_pair_is_kept_in_a_private_file(backend_url: str, tmp_path: Path) -> None:
    path = tmp_path / "device.pem"
    with DeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD, key_file=path) as one:
        first = one.device_key
        assert first is not None and one.current_key().jkt == first.jkt
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = DeviceKey.from_file(path)
    assert again.jkt == first.jkt  # the same identity after a restart
    os.chmod(path, 0o644)
    with pytest.raises(DeviceClientError, match="readable by others"):
        DeviceKey.from_file(path)
    (tmp_path / "garbage.pem").write_text("not a key")
    os.chmod(tmp_path / "garbage.pem", 0o600)
    with pytest.raises(DeviceClientError, match="cannot read"):
        DeviceKey.from_file(tmp_path / "garbage.pem")


def test_p256_device_keys_work_too(backend_url: str, stand_in: StandInGateway) -> None:
    with DeviceClient(
        backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD, bind=True, key_algorithm="ES256"
    ) as device:
        assert device.device_key is not None and device.device_key.algorithm == "ES256"
        assert chat(device.openai()) == "hi"
    assert jwt.get_unverified_header(stand_in.proofs[-1])["alg"] == "ES256"


def test_a_child_key_for_a_sub_agent(device: DeviceClient, stand_in: StandInGateway) -> None:
    parent = device.current_key()
    child = device.child_key(models=["deepseek-chat"], max_tokens=10, ttl=60)
    assert child.token not in repr(child) and child.max_tokens == 10
    assert child.expires_at <= parent.expires_at and child.jkt is None
    assert chat(child.openai(max_retries=0)) == "hi"  # a plain OpenAI client, no proof
    assert stand_in.charged[-1] == [parent.event_id, child.event_id]
    with pytest.raises(ValueError, match="max_tokens"):
        device.child_key(max_tokens=parent.max_tokens + 1)
    with pytest.raises(ValueError, match="models"):
        device.child_key(models=["another-model"])


def test_a_bound_child_and_its_bound_grandchild(
    device: DeviceClient, stand_in: StandInGateway
) -> None:
    parent = device.current_key()
    child = device.child_key(max_tokens=20, bind=True)
    assert child.device_key is not None and child.jkt == child.device_key.jkt
    assert chat(child.openai()) == "hi"
    thief = openai.OpenAI(api_key=child.token, base_url=child.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        chat(thief)

    sub_sub_agent = DeviceKey.generate("ES256")  # keeps its private key to itself
    grandchild = mint_child_key(
        child.token,
        child.device_key.private_key,
        now=time.time(),
        max_tokens=5,
        cnf_jkt=sub_sub_agent.jkt,
    )
    llm = openai.OpenAI(
        api_key=grandchild.token,
        base_url=child.base_url,
        http_client=sub_sub_agent.http_client(),
    )
    assert chat(llm) == "hi"
    assert stand_in.charged[-1] == [parent.event_id, child.event_id, grandchild.event_id]
    wrong_key = openai.OpenAI(
        api_key=grandchild.token,
        base_url=child.base_url,
        http_client=child.device_key.http_client(),
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError):
        chat(wrong_key)


def test_a_child_bound_to_a_key_the_sub_agent_already_has(device: DeviceClient) -> None:
    sub_agent = DeviceKey.generate()
    child = device.child_key(bind=sub_agent.jkt)
    assert child.device_key is None and child.jkt == key_thumbprint(sub_agent.private_key)


def test_children_need_a_bound_client(backend_url: str) -> None:
    with (
        DeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD) as unbound,
        pytest.raises(DeviceClientError, match="bind=True"),
    ):
        unbound.child_key(max_tokens=1)


async def test_the_async_client_binds_and_derives_too(
    backend_url: str, stand_in: StandInGateway
) -> None:
    async with AsyncDeviceClient(
        backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD, bind=True
    ) as device:
        llm = await device.openai()
        reply = await llm.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
        assert reply.choices[0].message.content == "hi" and len(stand_in.proofs) == 1
        child = await device.child_key(max_tokens=5, bind=True)
        sub = child.async_openai()
        reply = await sub.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
        assert reply.choices[0].message.content == "hi" and len(stand_in.proofs) == 2
        assert stand_in.charged[-1][-1] == child.event_id and not stand_in.refused
        await llm.close()
        await sub.close()
