"""The reference backend's policy sets all three budgets of a key, and its daily quota can
be in money: a key's max_cost is reserved at minting, what the callbacks say it cost is
counted, and a spent quota is a 429 naming the amounts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.core.original_demo import DEMO_WEBHOOK_SECRET
from dynaseal.core.settings import ConfigError, load_settings
from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.keys import peek_key
from support.backend import assert_openai_error, login
from support.callbacks import signed_headers
from support.databases import NewDatabase
from support.servers import free_port, serve
from support.tenants import DEMO_MODEL, bearer
from support.upstream import FakeUpstream
from support.waiting import eventually

ADMIN_PASSWORD = "admin-password-of-the-money-tests"
MESSAGES = [{"role": "user", "content": "Say hello"}]
#: 2,700 and 11,000 units of 1e-10 USD per prompt and generated token.
PRICES = {DEMO_MODEL: {"input": "0.27", "output": "1.10"}}


@dataclass
class System:
    backend: httpx.Client
    gateway_url: str

    def new_user(self, **policy: Any) -> dict[str, str]:
        admin = bearer(login(self.backend, "admin", ADMIN_PASSWORD)["access_token"])
        name = f"user-{uuid.uuid4().hex[:8]}"
        body = {"username": name, "password": "pw", **policy}
        created = self.backend.post("/v1/user/create", headers=admin, json=body)
        assert created.status_code == 201, created.text
        return bearer(login(self.backend, name, "pw")["access_token"])


@pytest.fixture
def system(database_url: NewDatabase, upstream: FakeUpstream) -> Iterator[System]:
    """A gateway with prices and the backend it calls back, signing for the demo tenant."""
    backend_port = free_port()
    gateway = create_gateway(
        GatewaySettings(
            database_url=database_url("gateway"),
            openai_base_url=f"{upstream.url}/v1",  # type: ignore[arg-type]
            model_prices=json.dumps(PRICES),
        ),
        demo=True,
        demo_data_callback_url=f"http://127.0.0.1:{backend_port}/v1/callback/usage",
    )
    backend = create_backend(
        BackendSettings(
            database_url=database_url("backend"),
            admin_user_password=ADMIN_PASSWORD,
            secret_key="money-tests-secret-that-is-long-enough",
        ),
        demo_data=True,
    )
    with (
        serve(gateway) as g,
        serve(backend, backend_port) as b,
        httpx.Client(base_url=b.url, timeout=30) as http,
    ):
        yield System(http, g.url)


def test_the_policy_sets_all_three_budgets_and_a_device_may_ask_for_less(
    system: System,
) -> None:
    user = system.new_user(key_budget_tokens=300, key_total_tokens=500, key_max_cost="0.01")
    policy = system.backend.get("/v1/user/me", headers=user).json()["policy"]
    assert (policy["key_total_tokens"], policy["key_max_cost"]) == (500, "0.01")

    def claims(**asked: Any) -> dict[str, Any]:
        created = system.backend.post("/v1/key/create", headers=user, json=asked)
        assert created.status_code == 200, created.text
        return peek_key(created.json()["token"]).claims

    whole = claims()
    assert (whole["max_tokens"], whole["max_total_tokens"], whole["max_cost"]) == (300, 500, "0.01")
    narrower = claims(max_total_tokens=100, max_cost="0.005")
    assert (narrower["max_total_tokens"], narrower["max_cost"]) == (100, "0.005")
    for wider, param in (({"max_cost": "0.02"}, "max_cost"), ({"max_total_tokens": 501}, None)):
        refused = system.backend.post("/v1/key/create", headers=user, json=wider)
        error = assert_openai_error(refused, 403)
        assert error["code"] == "budget_exceeded"
        assert error["param"] == (param or "max_total_tokens")
    floated = system.backend.post("/v1/key/create", headers=user, json={"max_cost": 0.005})
    assert assert_openai_error(floated, 400)["param"] == "max_cost"


def test_a_daily_money_quota_reserves_each_key_and_counts_what_it_cost(
    system: System, upstream: FakeUpstream
) -> None:
    user = system.new_user(daily_cost_quota="0.0001", key_max_cost="0.00006")
    first = system.backend.post("/v1/key/create", headers=user).json()
    second = system.backend.post("/v1/key/create", headers=user).json()
    assert (first["max_cost"], second["max_cost"]) == ("0.00006", "0.00004")  # what was left

    client = openai.OpenAI(base_url=system.gateway_url + "/v1", api_key=first["token"])
    answered = 0
    with pytest.raises(openai.RateLimitError, match="max_cost budget"):
        while True:
            client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
            answered += 1
    # 0.00001177 each (11 prompt and 8 generated tokens): five fit in 0.00006.
    assert answered == 5 == upstream.count

    def reported() -> dict[str, Any] | None:  # every answered request, by its callback
        usage: dict[str, Any] = system.backend.get("/v1/usage", headers=user).json()
        return usage if len(usage["data"]) >= answered else None

    usage = eventually(reported, timeout=20)
    assert [entry["cost"] for entry in usage["data"]] == ["0.00001177"] * 5
    assert usage["total_cost"] == "0.00005885"
    # Used 0.00005885; the first key may still spend 0.00000115, the second 0.00004.
    refused = system.backend.post("/v1/key/create", headers=user)
    error = assert_openai_error(refused, 429)
    assert error["code"] == "insufficient_quota"
    assert str(error["message"]).startswith(
        "Your daily quota of 0.0001 USD is spent or held by your unexpired keys "
        "(0.00005885 USD used today, 0.00004115 USD not yet spent by live keys)"
    )
    assert int(refused.headers["Retry-After"]) > 0


@pytest.mark.parametrize("cost", ["abc", 0.1, "-0.5", "0.00000000001"])
def test_a_callback_with_a_malformed_cost_is_refused(system: System, cost: object) -> None:
    body = json.dumps({"type": "usage", "event_id": "evt-1", "tokens": 3, "cost": cost}).encode()
    headers = signed_headers(DEMO_WEBHOOK_SECRET, body, f"msg_{uuid.uuid4().hex}")
    response = system.backend.post("/v1/callback/usage", content=body, headers=headers)
    assert assert_openai_error(response, 400)["param"] == "cost"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("USER_DAILY_COST_QUOTA", "-1"), ("KEY_MAX_COST", "abc"), ("KEY_MAX_COST", "1e-11")],
)
def test_money_settings_that_cannot_be_used_stop_the_backend(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(BackendSettings)


def test_money_settings_are_read_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_DAILY_COST_QUOTA", "0.3")
    monkeypatch.setenv("KEY_MAX_COST", "0.0125")
    settings = load_settings(BackendSettings)
    assert (settings.user_daily_cost_quota, settings.key_max_cost) == (
        Decimal("0.3"),
        Decimal("0.0125"),
    )
