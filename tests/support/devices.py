"""Fixtures of the device-client tests: a real backend and a stand-in gateway on
loopback. Import them into a test module to use them there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dynaseal.backend import BackendSettings, create_app
from support.databases import fresh_database
from support.servers import serve
from support.stand_in_gateway import StandInGateway


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInGateway]:
    fake = StandInGateway()
    with serve(fake.app()) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(autouse=True)
def _fresh_stand_in(request: pytest.FixtureRequest) -> None:
    if "stand_in" in request.fixturenames:
        request.getfixturevalue("stand_in").reset()


@pytest.fixture(scope="module")
def backend_url(
    tmp_path_factory: pytest.TempPathFactory, stand_in: StandInGateway
) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("client"), "backend") as url:
        settings = BackendSettings(
            database_url=url,
            secret_key="test-secret-key-for-backend-sessions",
            gateway_url=stand_in.url,
            llm_key=None,  # sign for the demo tenant whatever the environment says
            llm_user_id=None,
            llm_key_id=None,
        )
        with serve(create_app(settings, demo_data=True)) as server:
            yield server.url
