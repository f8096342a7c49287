"""The reference backend minting device-bound keys (issue 17), over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dynaseal.backend import create_app
from dynaseal.backend.demo_data import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from dynaseal.keys import generate_private_key, key_thumbprint, make_dpop_proof, peek_key
from support.databases import fresh_database
from support.servers import serve
from test_backend import ADMIN_PASSWORD, assert_openai_error, backend_settings, bearer, login

DEVICE = generate_private_key("EdDSA")
JKT = key_thumbprint(DEVICE)


@pytest.fixture(scope="module", params=[False, True], ids=["optional", "required"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The same backend with binding optional, and with REQUIRE_BOUND_KEYS set."""
    with fresh_database(tmp_path_factory.mktemp("binding"), "backend") as url:
        settings = backend_settings(url).model_copy(update={"require_bound_keys": request.param})
        with (
            serve(create_app(settings, demo_data=True)) as server,
            httpx.Client(base_url=server.url) as http,
        ):
            http.require_bound_keys = request.param  # type: ignore[attr-defined]
            yield http


@pytest.fixture(scope="module")
def device_user(backend: httpx.Client) -> dict[str, str]:
    return bearer(login(backend, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)["access_token"])


def cnf_of(token: str) -> Any:
    return peek_key(token).claims.get("cnf")


def create(http: httpx.Client, headers: dict[str, str], **body: Any) -> httpx.Response:
    return http.post("/v1/key/create", headers=headers, json=body or None)


def test_dpop_jkt_binds_the_key(backend: httpx.Client, device_user: dict[str, str]) -> None:
    response = create(backend, device_user, dpop_jkt=JKT)
    assert response.status_code == 200, response.text
    assert cnf_of(response.json()["token"]) == {"jkt": JKT}
    assert response.json()["dpop_jkt"] == JKT


@pytest.mark.parametrize("path", ["/key/create", "/v1/key/create", "/api/v1/key/create"])
def test_a_dpop_proof_binds_the_key(
    backend: httpx.Client, device_user: dict[str, str], path: str
) -> None:
    """RFC 9449 section 10: the thumbprint is taken from the proof of the key request."""
    proof = make_dpop_proof(DEVICE, "POST", f"{backend.base_url}{path}", None, now=time.time())
    response = backend.post(path, headers=device_user | {"DPoP": proof})
    assert response.status_code == 200, response.text
    assert cnf_of(response.json()["token"]) == {"jkt": JKT}


@pytest.mark.parametrize(
    ("method", "path", "age"),
    [
        ("POST", "/v1/other", 0),  # a proof for another URL
        ("GET", "/v1/key/create", 0),  # for another method
        ("POST", "/v1/key/create", 120),  # too old
    ],
)
def test_a_bad_proof_is_a_clear_400(
    backend: httpx.Client, device_user: dict[str, str], method: str, path: str, age: int
) -> None:
    url = f"{backend.base_url}{path}"
    proof = make_dpop_proof(DEVICE, method, url, None, now=time.time() - age)
    response = backend.post("/v1/key/create", headers=device_user | {"DPoP": proof})
    error = assert_openai_error(response, 400)
    assert error["code"] == "invalid_dpop_proof" and error["param"] == "DPoP"
    garbage = backend.post("/v1/key/create", headers=device_user | {"DPoP": "garbage"})
    assert assert_openai_error(garbage, 400)["code"] == "invalid_dpop_proof"


def test_proof_and_body_must_name_the_same_key(
    backend: httpx.Client, device_user: dict[str, str]
) -> None:
    url = f"{backend.base_url}/v1/key/create"
    proof = make_dpop_proof(generate_private_key("ES256"), "POST", url, None, now=time.time())
    response = backend.post(
        "/v1/key/create", headers=device_user | {"DPoP": proof}, json={"dpop_jkt": JKT}
    )
    assert assert_openai_error(response, 400)["code"] == "invalid_dpop_proof"


@pytest.mark.parametrize("jkt", ["", "short", JKT + "A", JKT[:-1] + "+", 42])
def test_a_malformed_dpop_jkt_is_a_400(
    backend: httpx.Client, device_user: dict[str, str], jkt: Any
) -> None:
    error = assert_openai_error(create(backend, device_user, dpop_jkt=jkt), 400)
    assert "dpop_jkt" in str(error["param"]) + str(error["message"])


def test_unbound_requests_follow_the_policy(
    backend: httpx.Client, device_user: dict[str, str]
) -> None:
    response = create(backend, device_user)
    if backend.require_bound_keys:  # type: ignore[attr-defined]
        error = assert_openai_error(response, 400)
        assert error["code"] == "binding_required" and "dpop_jkt" in str(error["message"])
    else:
        assert response.status_code == 200 and cnf_of(response.json()["token"]) is None
        assert response.json()["dpop_jkt"] is None


def test_a_users_own_policy_overrides_the_default(backend: httpx.Client) -> None:
    admin = bearer(login(backend, "admin", ADMIN_PASSWORD)["access_token"])
    strict = not backend.require_bound_keys  # type: ignore[attr-defined]
    name = f"policy-{int(strict)}"
    created = backend.post(
        "/v1/user/create",
        headers=admin,
        json={"username": name, "password": "pw-of-the-user", "require_bound_keys": strict},
    )
    assert created.status_code == 201, created.text
    assert created.json()["policy"]["require_bound_keys"] is strict
    user = bearer(login(backend, name, "pw-of-the-user")["access_token"])
    unbound = create(backend, user)
    assert unbound.status_code == (400 if strict else 200), unbound.text
    assert create(backend, user, dpop_jkt=JKT).status_code == 200
