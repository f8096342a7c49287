"""The reference backend on loopback, and logging in to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from dynaseal.backend import BackendSettings, create_app
from support.databases import fresh_database
from support.servers import serve

ADMIN_PASSWORD = "admin-password"


def backend_settings(database_url: str) -> BackendSettings:
    return BackendSettings(
        database_url=database_url,
        secret_key="test-secret-key-for-backend-sessions",
        admin_user_password=ADMIN_PASSWORD,
        llm_key=None,  # explicit, so the environment cannot change the tests
        llm_user_id=None,
        llm_key_id=None,
    )


@contextmanager
def demo_backend(directory: Path) -> Iterator[httpx.Client]:
    """The backend with its demo data (it trusts the demo tenant's public webhook secret),
    and an HTTP client on it."""
    with (
        fresh_database(directory, "backend") as url,
        serve(create_app(backend_settings(url), demo_data=True)) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        yield http


@contextmanager
def backend_for(directory: Path, gateway_url: str) -> Iterator[str]:
    """The backend with its demo data, minting keys for the demo tenant of the gateway at
    ``gateway_url``; yields its URL."""
    with fresh_database(directory, "backend") as url:
        settings = backend_settings(url).model_copy(update={"gateway_url": gateway_url})
        with serve(create_app(settings, demo_data=True)) as server:
            yield server.url


def login(http: httpx.Client, username: str, password: str) -> dict[str, str]:
    response = http.post("/v1/user/login", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error
