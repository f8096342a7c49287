"""Tenant accounts: logins, tokens that can't be swapped, API keys only their owner sees."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from dynaseal.core.original_demo import (
    DEMO_TENANT_EMAIL,
    DEMO_TENANT_ID,
    DEMO_TENANT_PASSWORD,
    DEMO_TENANT_USERNAME,
)
from support.servers import ServerThread
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL, bearer, login, mint

MESSAGES = [{"role": "user", "content": "Say hello"}]


def post_login(gateway: ServerThread, username: str, password: str) -> httpx.Response:
    """The original design's login path, at the root."""
    return httpx.post(
        gateway.url + "/user/login", data={"username": username, "password": password}
    )


def access(gateway: ServerThread, username: str, password: str) -> dict[str, str]:
    return login(gateway.url, username, password)


def chat(gateway: ServerThread, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=bearer(key),
        json={"model": DEMO_MODEL, "messages": MESSAGES},
    )


@pytest.mark.parametrize("name", [DEMO_TENANT_USERNAME, DEMO_TENANT_EMAIL])
def test_demo_tenant_logs_in_with_the_original_bcrypt_hash(
    gateway: ServerThread, name: str
) -> None:
    response = post_login(gateway, name, DEMO_TENANT_PASSWORD)
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    me = httpx.get(gateway.url + "/v1/user/me", headers=bearer(response.json()["access_token"]))
    assert me.json()["id"] == DEMO_TENANT_ID


def test_wrong_password_is_refused(gateway: ServerThread) -> None:
    response = post_login(gateway, DEMO_TENANT_USERNAME, "wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_access_and_refresh_tokens_cannot_be_swapped(gateway: ServerThread) -> None:
    tokens = post_login(gateway, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD).json()
    me = httpx.get(gateway.url + "/v1/user/me", headers=bearer(tokens["refresh_token"]))
    assert me.status_code == 401
    swapped = httpx.post(
        gateway.url + "/v1/user/refresh", json={"refresh_token": tokens["access_token"]}
    )
    assert swapped.status_code == 401
    fresh = httpx.post(
        gateway.url + "/v1/user/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert fresh.status_code == 200 and fresh.json()["access_token"]


def test_only_the_admin_registers_tenants(gateway: ServerThread) -> None:
    body = {"username": f"t-{uuid.uuid4().hex[:8]}", "password": "password-123"}
    assert httpx.post(gateway.url + "/v1/tenants", json=body).status_code == 401
    tenant = access(gateway, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
    assert httpx.post(gateway.url + "/v1/tenants", json=body, headers=tenant).status_code == 403
    admin = access(gateway, "admin", ADMIN_PASSWORD)
    created = httpx.post(gateway.url + "/v1/tenants", json=body, headers=admin)
    assert created.status_code == 201
    assert "password" not in created.text
    again = httpx.post(gateway.url + "/v1/tenants", json=body, headers=admin)
    assert again.status_code == 409


def test_tenants_without_email_and_clashing_names(gateway: ServerThread) -> None:
    """An empty email is no email (two such tenants used to be a 500); a username or email
    equal to any tenant's username or email is a 409, never a 500."""
    admin = access(gateway, "admin", ADMIN_PASSWORD)

    def register(username: str, email: str | None) -> httpx.Response:
        body = {"username": username, "password": "password-123", "email": email}
        return httpx.post(gateway.url + "/v1/tenants", json=body, headers=admin)

    tag = uuid.uuid4().hex[:8]
    for n in range(2):
        created = register(f"no-email-{n}-{tag}", "")
        assert created.status_code == 201, created.text
        assert created.json()["email"] is None
    for username, email in (
        (f"other-{tag}", DEMO_TENANT_USERNAME),  # an email equal to a username
        (DEMO_TENANT_EMAIL, None),  # a username equal to an email
        (f"again-{tag}", DEMO_TENANT_EMAIL),
    ):
        refused = register(username, email)
        assert refused.status_code == 409, refused.text
        assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
    assert access(gateway, DEMO_TENANT_EMAIL, DEMO_TENANT_PASSWORD)


def test_a_refresh_token_no_jwt_library_can_encode_is_a_401(gateway: ServerThread) -> None:
    body = b'{"refresh_token": "\\ud800"}'  # a lone surrogate: valid JSON, no UTF-8
    response = httpx.post(
        gateway.url + "/v1/user/refresh",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 401, response.text


def test_api_keys_are_created_shown_once_rotated_and_revoked(gateway: ServerThread) -> None:
    admin = access(gateway, "admin", ADMIN_PASSWORD)
    name = f"t-{uuid.uuid4().hex[:8]}"
    tenant_id = httpx.post(
        gateway.url + "/v1/tenants",
        headers=admin,
        json={"username": name, "password": "password-123"},
    ).json()["id"]
    owner = access(gateway, name, "password-123")

    first = httpx.post(gateway.url + "/v1/api-keys", headers=owner, json={"label": "one"})
    second = httpx.post(gateway.url + "/v1/api-keys", headers=owner)
    assert first.status_code == second.status_code == 201
    first_key, second_key = first.json(), second.json()
    assert first_key["tenant_id"] == tenant_id and len(first_key["secret"]) >= 32
    assert "public_key" not in first_key  # an HS256 key has none: no "public_key": null

    listed = httpx.get(gateway.url + "/v1/api-keys", headers=owner)
    assert [k["kid"] for k in listed.json()] == [first_key["kid"], second_key["kid"]]
    assert "secret" not in listed.text and first_key["secret"] not in listed.text
    assert httpx.get(gateway.url + "/v1/api-keys").status_code == 401

    # Keys with a kid verify against that key; the original format (no kid) against any.
    by_kid = mint(secret=second_key["secret"], tenant_id=tenant_id, kid=second_key["kid"])
    no_kid = jwt.encode(
        {
            "api-key": tenant_id,
            "model": DEMO_MODEL,
            "max_tokens": 100,
            "expiring": int(time.time()) + 60,
            "event_id": uuid.uuid4().hex,
        },
        second_key["secret"],
        algorithm="HS256",
    )
    assert chat(gateway, by_kid).status_code == 200
    assert chat(gateway, no_kid).status_code == 200
    wrong_kid = mint(secret=second_key["secret"], tenant_id=tenant_id, kid=first_key["kid"])
    assert chat(gateway, wrong_kid).status_code == 401

    # Another tenant can neither see nor revoke these keys.
    demo = access(gateway, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
    other = httpx.delete(gateway.url + f"/v1/api-keys/{second_key['kid']}", headers=demo)
    assert other.status_code == 404

    revoked = httpx.delete(gateway.url + f"/v1/api-keys/{second_key['kid']}", headers=owner)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert chat(gateway, by_kid).status_code == 401
    assert chat(gateway, no_kid).status_code == 401
    # The first key still works: revoking one key leaves the others alone.
    assert chat(gateway, mint(secret=first_key["secret"], tenant_id=tenant_id)).status_code == 200


def test_callback_url_must_be_http(gateway: ServerThread) -> None:
    owner = access(gateway, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
    response = httpx.patch(
        gateway.url + "/v1/user/me", headers=owner, json={"callback_url": "file:///etc/passwd"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "callback_url"


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/api/v1/chat/complete"])
def test_unknown_paths_answer_in_openais_error_format(gateway: ServerThread, path: str) -> None:
    response = httpx.get(gateway.url + path)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": f"Unknown request URL: GET {path}.",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }


@pytest.mark.parametrize(
    ("path", "required"),
    [
        ("/v1/chat/completions", {"model", "messages"}),
        ("/v1/responses", {"model"}),
        ("/v1/embeddings", {"model", "input"}),
        ("/v1/completions", {"model", "prompt"}),
    ],
)
def test_the_api_documentation_includes_the_device_endpoints(
    gateway: ServerThread, path: str, required: set[str]
) -> None:
    schema = httpx.get(gateway.url + "/openapi.json").json()
    operation = schema["paths"][path]["post"]
    assert "dynamic key" in operation["description"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert required <= set(_resolve(schema, body)["required"])
    assert httpx.get(gateway.url + "/docs").status_code == 200


def _resolve(schema: dict, node: dict) -> dict:
    if "$ref" in node:
        return schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node
