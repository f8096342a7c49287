"""Password guessing on both services: limited per (account, address), per address and,
more loosely, per account; an attacker cannot lock the owner out, and with REDIS_URL every
process counts the same failures."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from support.databases import NewDatabase
from support.redis_server import RedisServer
from support.servers import ServerThread, free_port, serve
from support.tenants import ADMIN_PASSWORD

Service = Callable[..., AbstractContextManager[ServerThread]]


def serving(create_app: Callable[[Any], Any], settings_class: type[Any]) -> Service:
    """Start one of the services on a database with the admin account and ``settings``."""

    @contextmanager
    def start(database_url: str, **settings: Any) -> Iterator[ServerThread]:
        settings = {
            "database_url": database_url,
            "admin_user_password": ADMIN_PASSWORD,
            "secret_key": "login-throttle-tests-secret-of-32-characters",
            **settings,
        }
        with serve(create_app(settings_class(**settings))) as server:
            yield server

    return start


gateway = serving(create_gateway, GatewaySettings)
backend = serving(create_backend, BackendSettings)
SERVICES = {"gateway": gateway, "backend": backend}


@pytest.fixture(params=list(SERVICES))
def service(request: pytest.FixtureRequest) -> Service:
    return SERVICES[request.param]


def attempt(server: ServerThread, username: str, password: str, address: str) -> httpx.Response:
    """A login from the loopback address ``address`` (all of 127.0.0.0/8 is ours)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport) as http:
        form = {"username": username, "password": password}
        return http.post(server.url + "/v1/user/login", data=form)


def statuses(server: ServerThread, username: str, address: str, guesses: int) -> list[int]:
    return [attempt(server, username, f"guess-{n}", address).status_code for n in range(guesses)]


def test_guessing_from_one_address_does_not_lock_the_owner_out(
    service: Service, database_url: NewDatabase
) -> None:
    with service(database_url("svc")) as server:
        assert statuses(server, "admin", "127.0.0.2", 7) == [401] * 5 + [429] * 2
        refused = attempt(server, "admin", ADMIN_PASSWORD, "127.0.0.2")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"]["code"] == "too_many_login_attempts"
        # The owner, from elsewhere, still gets in.
        assert attempt(server, "admin", ADMIN_PASSWORD, "127.0.0.3").status_code == 200


def test_guessing_from_many_addresses_hits_a_per_account_limit_but_not_known_addresses(
    service: Service, database_url: NewDatabase
) -> None:
    limits = {"login_failures_per_account_and_address": 2, "login_failures_per_account": 4}
    with service(database_url("svc"), **limits) as server:
        assert attempt(server, "admin", ADMIN_PASSWORD, "127.0.0.9").status_code == 200
        assert statuses(server, "admin", "127.0.0.2", 3) == [401, 401, 429]
        assert statuses(server, "admin", "127.0.0.3", 3) == [401, 401, 429]
        # Four failures on the account: a new address may not try any more ...
        assert statuses(server, "admin", "127.0.0.4", 1) == [429]
        assert attempt(server, "admin", ADMIN_PASSWORD, "127.0.0.4").status_code == 429
        # ... but the address the owner logged in from before still works.
        assert attempt(server, "admin", ADMIN_PASSWORD, "127.0.0.9").status_code == 200


def test_failures_are_shared_through_redis_by_every_process(
    service: Service, database_url: NewDatabase, redis_server: RedisServer
) -> None:
    victim = f"victim-{uuid.uuid4().hex[:8]}"  # the Redis server outlives this test
    url = database_url("svc")
    with (
        service(url, redis_url=redis_server.url) as first,
        service(url, redis_url=redis_server.url) as second,
    ):
        guesses = [statuses(s, victim, "127.0.0.5", 1)[0] for s in (first, second) * 3]
        assert guesses == [401] * 5 + [429]
        assert statuses(first, victim, "127.0.0.5", 1) == [429]


def test_logins_fail_closed_while_redis_is_unreachable(database_url: NewDatabase) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    with backend(database_url("svc"), redis_url=unreachable) as server:
        response = attempt(server, "admin", ADMIN_PASSWORD, "127.0.0.1")
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
