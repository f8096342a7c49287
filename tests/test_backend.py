"""The reference backend over real HTTP: logins, key minting, callbacks and usage."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import SecretStr

from dynaseal.backend import create_app
from dynaseal.backend.demo_data import (
    DEMO_TENANT_API_KEY,
    DEMO_TENANT_ID,
    DEMO_USER_EMAIL,
    DEMO_USER_ID,
    DEMO_USER_PASSWORD,
    DEMO_USER_USERNAME,
)
from dynaseal.keys import (
    DEFAULT_AUDIENCE,
    VerificationKey,
    generate_key_pair,
    load_public_key,
    peek_key,
    verify_key,
)
from support.backend import ADMIN_PASSWORD, assert_openai_error, backend_settings, login
from support.databases import NewDatabase
from support.servers import serve
from support.tenants import bearer


def test_demo_user_logs_in_by_username_and_by_email(backend: httpx.Client) -> None:
    for name in (DEMO_USER_USERNAME, DEMO_USER_EMAIL):
        tokens = login(backend, name, DEMO_USER_PASSWORD)
        assert tokens["token_type"] == "bearer"
        me = backend.get("/user/me", headers=bearer(tokens["access_token"])).json()
        assert me["id"] == DEMO_USER_ID
        assert me["username"] == DEMO_USER_USERNAME
        assert me["policy"]["models"] == ["deepseek-chat"]


def test_wrong_password_and_unknown_user_are_401(backend: httpx.Client) -> None:
    for name, password in ((DEMO_USER_USERNAME, "nope"), ("nobody", DEMO_USER_PASSWORD)):
        response = backend.post("/user/login", data={"username": name, "password": password})
        assert_openai_error(response, 401)
    assert_openai_error(backend.post("/user/login", data={"username": "x"}), 400)


def test_password_guessing_is_throttled(backend: httpx.Client) -> None:
    guesses = [
        backend.post("/user/login", data={"username": "guessed-user", "password": f"p{i}"})
        for i in range(6)
    ]
    assert [r.status_code for r in guesses] == [401] * 5 + [429]
    assert int(guesses[-1].headers["Retry-After"]) > 0
    assert guesses[-1].json()["error"]["code"] == "too_many_login_attempts"


def test_access_and_refresh_tokens_are_not_interchangeable(backend: httpx.Client) -> None:
    tokens = login(backend, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)
    refreshed = backend.post("/v1/user/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert backend.get("/v1/user/me", headers=bearer(refreshed.json()["access_token"])).is_success
    access_as_refresh = {"refresh_token": tokens["access_token"]}
    assert_openai_error(backend.post("/v1/user/refresh", json=access_as_refresh), 401)
    refresh_as_access = bearer(tokens["refresh_token"])
    assert_openai_error(backend.get("/v1/user/me", headers=refresh_as_access), 401)
    assert_openai_error(backend.post("/v1/key/create", headers=refresh_as_access), 401)


@pytest.mark.parametrize("prefix", ["", "/v1", "/api/v1"])
def test_key_create_mints_a_verifiable_key_with_the_policy(
    backend: httpx.Client, client1: dict[str, str], prefix: str
) -> None:
    response = backend.post(f"{prefix}/key/create", headers=client1)
    assert response.status_code == 200, response.text
    key = response.json()
    assert key["model"] == "deepseek-chat" and key["models"] == ["deepseek-chat"]
    assert key["max_tokens"] == 16_000  # a session's worth (issue 10)
    assert key["expires_at"] == key["expiring"]
    assert abs(key["expires_at"] - (time.time() + 1800)) < 5
    assert key["base_url"] == key["gateway_url"] + "/v1"

    unverified = peek_key(key["token"])
    assert unverified.tenant_id == DEMO_TENANT_ID
    assert unverified.kid is None
    grant = verify_key(
        unverified,
        [VerificationKey("k1", "HS256", DEMO_TENANT_API_KEY.encode())],
        audience=DEFAULT_AUDIENCE,
        now=time.time(),
    )
    assert grant.event_id == key["event_id"]
    assert grant.models == ("deepseek-chat",)
    assert grant.max_tokens == 16_000
    assert grant.expires_at == key["expires_at"]
    assert grant.sub == DEMO_USER_ID
    assert unverified.claims["api-key"] == DEMO_TENANT_ID


def test_key_create_may_narrow_but_never_widen_the_policy(
    backend: httpx.Client, client1: dict[str, str]
) -> None:
    narrowed = backend.post("/v1/key/create", headers=client1, json={"max_tokens": 10})
    assert narrowed.status_code == 200 and narrowed.json()["max_tokens"] == 10
    too_much = backend.post("/v1/key/create", headers=client1, json={"max_tokens": 16_001})
    assert_openai_error(too_much, 403)
    other_model = backend.post("/v1/key/create", headers=client1, json={"model": "gpt-4o"})
    assert_openai_error(other_model, 403)
    zero = backend.post("/v1/key/create", headers=client1, json={"max_tokens": 0})
    assert_openai_error(zero, 400)


def test_key_create_needs_a_login(backend: httpx.Client) -> None:
    assert_openai_error(backend.post("/v1/key/create"), 401)
    assert_openai_error(backend.post("/v1/key/create", headers=bearer("not-a-jwt")), 401)


def test_only_an_admin_creates_users(
    backend: httpx.Client, client1: dict[str, str], admin: dict[str, str]
) -> None:
    new_user = {
        "username": "device7",
        "password": "pw7",
        "allowed_models": ["m1", "m2"],
        "key_budget_tokens": 50,
        "key_lifetime_seconds": 60,
    }
    assert_openai_error(backend.post("/v1/user/create", json=new_user), 401)
    assert_openai_error(backend.post("/v1/user/create", json=new_user, headers=client1), 403)
    created = backend.post("/v1/user/create", json=new_user, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["policy"] == {
        "models": ["m1", "m2"],
        "key_budget_tokens": 50,
        "key_total_tokens": None,
        "key_max_cost": None,
        "key_lifetime_seconds": 60,
        "daily_token_quota": None,
        "daily_cost_quota": None,
        "require_bound_keys": False,
    }
    assert_openai_error(backend.post("/v1/user/create", json=new_user, headers=admin), 409)

    device = bearer(login(backend, "device7", "pw7")["access_token"])
    key = backend.post("/v1/key/create", headers=device, json={"model": "m2"}).json()
    assert key["models"] == ["m2"] and key["max_tokens"] == 50


def test_usernames_and_emails_are_one_namespace(
    backend: httpx.Client, admin: dict[str, str]
) -> None:
    """A username equal to another user's email (or the reverse) would make the login
    form's ``username`` field ambiguous: it is refused, and the first user's logins work."""
    tag = time.time_ns()
    ann = {"username": f"ann-{tag}", "email": f"ann-{tag}@example.com", "password": "pw-ann"}
    bob = {"username": f"bob-{tag}@example.com", "password": "pw-bob"}
    for user in (ann, bob):
        assert backend.post("/v1/user/create", json=user, headers=admin).status_code == 201
    for clash in (
        {"username": ann["email"], "password": "pw-mallory"},
        {"username": f"carol-{tag}", "email": bob["username"], "password": "pw-carol"},
    ):
        refused = backend.post("/v1/user/create", json=clash, headers=admin)
        assert assert_openai_error(refused, 409)["code"] == "user_exists"
    for user, names in ((ann, ("username", "email")), (bob, ("username",))):
        for name in names:
            assert login(backend, user[name], user["password"])["access_token"]


def test_malformed_numbers_and_tokens_are_400_not_500(
    backend: httpx.Client, admin: dict[str, str]
) -> None:
    """Numbers past a 64-bit database integer used to be 500s, as did a refresh token
    with a lone surrogate (valid JSON, no UTF-8)."""
    tag = time.time_ns()
    for field, value in (
        ("key_budget_tokens", 2**70),
        ("key_budget_tokens", 2**63),
        ("daily_token_quota", 2**63),
    ):
        body = {"username": f"big-{tag}-{field}", "password": "pw", field: value}
        refused = backend.post("/v1/user/create", json=body, headers=admin)
        assert assert_openai_error(refused, 400)["param"] == field
    surrogate = backend.post(
        "/v1/user/refresh",
        content=b'{"refresh_token": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert assert_openai_error(surrogate, 400)["param"] == "refresh_token"


def test_backend_without_tenant_credentials_answers_503(
    database_url: NewDatabase,
) -> None:
    settings = backend_settings(database_url("backend"))
    with serve(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        admin = bearer(login(http, "admin", ADMIN_PASSWORD)["access_token"])
        error = assert_openai_error(http.post("/v1/key/create", headers=admin), 503)
        assert "LLM_KEY" in str(error["message"]) and "LLM_USER_ID" in str(error["message"])


def test_backend_mints_with_an_ed25519_private_key(database_url: NewDatabase) -> None:
    pair = generate_key_pair("EdDSA")
    settings = backend_settings(database_url("backend")).model_copy(
        update={
            "llm_key": SecretStr(pair.private_pem),
            "llm_key_algorithm": "EdDSA",
            "llm_user_id": "tenant-ed",
            "llm_key_id": "ed-1",
        }
    )
    with serve(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        admin = bearer(login(http, "admin", ADMIN_PASSWORD)["access_token"])
        token = http.post("/v1/key/create", headers=admin).json()["token"]
    unverified = peek_key(token)
    assert unverified.header["alg"] == "EdDSA" and unverified.kid == "ed-1"
    public = VerificationKey("ed-1", "EdDSA", load_public_key("EdDSA", pair.public_pem))
    grant = verify_key(unverified, [public], audience=DEFAULT_AUDIENCE, now=time.time())
    assert grant.tenant_id == "tenant-ed"
