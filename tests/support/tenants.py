"""Tenants of a running gateway, created through its HTTP API as an operator would."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from dynaseal.core.original_demo import DEMO_TENANT_API_KEY, DEMO_TENANT_ID
from dynaseal.keys import mint_key, peek_key

ADMIN_PASSWORD = "admin-password-for-tests"
TENANT_PASSWORD = "password-123"
DEMO_MODEL = "deepseek-chat"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(base_url: str, username: str, password: str) -> dict[str, str]:
    """Log in to the gateway; the access token as an Authorization header."""
    response = httpx.post(
        base_url + "/v1/user/login", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def mint(**overrides: Any) -> str:
    """A key in our format, minted with the demo tenant's secret unless told otherwise."""
    options: dict[str, Any] = {"tenant_id": DEMO_TENANT_ID, "model": DEMO_MODEL, "max_tokens": 1000}
    options.update(overrides)
    secret = options.pop("secret", DEMO_TENANT_API_KEY)
    return mint_key(secret, **options).token


def original_key(**overrides: Any) -> str:
    """A key exactly as the original design's backend minted it, with plain PyJWT."""
    claims: dict[str, Any] = {
        "api-key": DEMO_TENANT_ID,
        "model": DEMO_MODEL,
        "max_tokens": 100,
        "expiring": int(time.time()) + 600,
        "event_id": f"evt-{time.time_ns()}",
    }
    claims.update(overrides)
    return jwt.encode(claims, DEMO_TENANT_API_KEY, algorithm="HS256")


def event_of(token: str) -> str:
    """The event id a key carries (what its callbacks are filed under)."""
    claims = peek_key(token).claims
    return str(claims.get("jti") or claims["event_id"])


@dataclass
class TenantHandle:
    """A tenant of its own, so a test may change its settings without touching others."""

    base_url: str
    id: str
    username: str
    auth: dict[str, str]
    webhook_secret: str | None
    api_key: dict[str, Any] | None = None  # the first HS256 key, when asked for one

    def add_api_key(self, **body: Any) -> dict[str, Any]:
        response = httpx.post(self.base_url + "/v1/api-keys", headers=self.auth, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def key_with(self, record: dict[str, Any], **claims: Any) -> str:
        """A dynamic key signed with one of this tenant's HS256 API keys."""
        return mint(secret=record["secret"], kid=record["kid"], tenant_id=self.id, **claims)

    def key(self, **claims: Any) -> str:
        """A dynamic key signed with the tenant's first API key."""
        assert self.api_key is not None, "create the tenant with_api_key=True"
        return self.key_with(self.api_key, **claims)

    def without_in_flight_limit(self) -> None:
        """No per-key limit of requests in flight: budgets alone decide."""
        limits = {"rate_limits": {"key_concurrency": 0}}
        response = httpx.patch(self.base_url + "/v1/user/me", headers=self.auth, json=limits)
        assert response.status_code == 200, response.text


def create_tenant(
    base_url: str, callback_url: str | None = None, *, with_api_key: bool = False
) -> TenantHandle:
    """Register a fresh tenant as the admin and log in as it."""
    username = f"t-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {"username": username, "password": TENANT_PASSWORD}
    if callback_url is not None:
        body["callback_url"] = callback_url
    admin = login(base_url, "admin", ADMIN_PASSWORD)
    created = httpx.post(base_url + "/v1/tenants", headers=admin, json=body)
    assert created.status_code == 201, created.text
    tenant = created.json()
    handle = TenantHandle(
        base_url,
        tenant["id"],
        username,
        login(base_url, username, TENANT_PASSWORD),
        tenant.get("webhook_secret"),
    )
    if with_api_key:
        handle.api_key = handle.add_api_key()
    return handle
