"""Money: a gateway with a price table, keys capped in USD, and the cost of each request in
the callbacks, the ledger and what a key sees of itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from support.callbacks import CallbackSink
from support.gateways import demo_gateway
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, create_tenant, event_of, login, mint
from support.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "Say hello"}]
#: USD per million tokens: 2,700 / 700 / 11,000 units of 1e-10 USD per token.
PRICES = {DEMO_MODEL: {"input": "0.27", "cached_input": "0.07", "output": "1.10"}}
#: What the fake upstream's answer costs: 11 prompt and 8 generated tokens.
ANSWER_COST = Decimal("0.00001177")


@pytest.fixture(scope="module")
def priced(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[ServerThread]:
    with demo_gateway(
        tmp_path_factory.mktemp("priced"),
        upstream,
        callback_url=sink.url,
        model_prices=json.dumps(PRICES),
    ) as server:
        yield server


def chat(gateway: ServerThread, key: str, **body: Any) -> httpx.Response:
    payload = {"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 10, **body}
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json=payload,
        timeout=10,
    )


def test_a_cost_capped_key_is_refused_once_its_money_is_spent(
    priced: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = mint(max_tokens=10_000, max_cost="0.00005")
    statuses = []
    for _ in range(6):
        answer = chat(priced, key)
        statuses.append(answer.status_code)
        if answer.status_code != 200:
            break
        last = answer
    # Each request holds 10 estimated prompt tokens and 10 generated at most (0.0000137
    # USD) and costs 0.00001177: four fit in 0.00005.
    assert statuses == [200, 200, 200, 200, 429]
    assert last.headers["x-dynaseal-budget-remaining-cost"] == "0.00000292"
    refused = answer.json()["error"]
    assert refused["code"] == "insufficient_quota"
    assert refused["message"] == (
        "This key's max_cost budget (USD) has 0.00000292 USD left; this request may cost "
        "0.0000137 USD (an estimated 10 prompt tokens plus up to 10 generated tokens)."
    )
    callbacks = sink.wait_for(4, event_id=event_of(key))
    assert [Decimal(p["cost"]) for p in callbacks] == [ANSWER_COST] * 4
    seen = httpx.get(priced.url + "/v1/key", headers={"Authorization": f"Bearer {key}"}).json()
    assert seen["budgets"]["max_cost"] == {
        "limit": "0.00005",
        "used": "0.00004708",
        "reserved": "0",
        "remaining": "0.00000292",
        "source": "claim",
    }
    owner = login(priced.url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)
    ledger = httpx.get(
        priced.url + "/v1/usage", headers=owner, params={"event_id": event_of(key)}
    ).json()
    assert [r["cost"] for r in ledger["data"]] == ["0.00001177"] * 4
    assert ledger["totals"]["cost"] == "0.00004708"
    assert Decimal(ledger["tenant_total_cost"]) >= Decimal("0.00004708")
    assert upstream.count == 4


def test_cached_prompt_tokens_cost_the_cached_price(
    priced: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.cached_tokens = 5
    key = mint()
    assert chat(priced, key).status_code == 200
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["cost"] == "0.00001077"  # 6 x 0.27 + 5 x 0.07 + 8 x 1.10 per million


def test_a_model_without_a_price_is_refused_only_to_cost_capped_keys(
    priced: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    models = [DEMO_MODEL, "unpriced-model"]
    capped = chat(priced, mint(model=models, max_cost="1"), model="unpriced-model")
    assert capped.status_code == 403
    assert capped.json()["error"]["code"] == "model_not_priced"
    assert "no price for the model 'unpriced-model'" in capped.json()["error"]["message"]
    key = mint(model=models)
    assert chat(priced, key, model="unpriced-model").status_code == 200
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["cost"] is None and callback["tokens"] == 19
    assert upstream.count == 1


def test_a_tenant_prices_models_for_its_own_keys(
    priced: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    tenant = create_tenant(priced.url, callback_url=sink.url, with_api_key=True)

    def set_prices(prices: Any) -> httpx.Response:
        return httpx.patch(
            priced.url + "/v1/user/me", headers=tenant.auth, json={"model_prices": prices}
        )

    own = {"input": "1", "output": "2.5"}
    assert set_prices({DEMO_MODEL: own}).json()["model_prices"] == {
        DEMO_MODEL: {"input": "1", "cached_input": "1", "output": "2.5"}
    }
    key = tenant.key()
    assert chat(priced, key).status_code == 200
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["cost"] == "0.000031"  # 11 x 1 + 8 x 2.5 per million
    assert set_prices({DEMO_MODEL: None}).json()["model_prices"] == {}
    back = tenant.key()
    assert chat(priced, back).status_code == 200
    assert sink.wait_for(1, event_id=event_of(back))[0]["cost"] == "0.00001177"
    me = httpx.get(priced.url + "/v1/user/me", headers=tenant.auth).json()
    assert me["total_cost"] == "0.00004277"


@pytest.mark.parametrize(
    ("prices", "words"),
    [
        ({DEMO_MODEL: {"input": "0.00001", "output": "1"}}, "more than 4 decimals"),
        ({DEMO_MODEL: {"input": 0.27, "output": "1"}}, "decimal string"),
        ({DEMO_MODEL: {"input": "-1", "output": "1"}}, "from 0 to 10000"),
        ({DEMO_MODEL: {"output": "1"}}, "input is required"),
        ({DEMO_MODEL: {"input": "1", "output": "1", "per": "token"}}, "unknown fields"),
    ],
)
def test_prices_the_gateway_cannot_use_are_refused(
    priced: ServerThread, prices: dict[str, Any], words: str
) -> None:
    tenant = create_tenant(priced.url)
    response = httpx.patch(
        priced.url + "/v1/user/me", headers=tenant.auth, json={"model_prices": prices}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "model_prices" and words in error["message"]


def test_tenant_default_cost_caps_original_format_keys(
    priced: ServerThread, upstream: FakeUpstream
) -> None:
    tenant = create_tenant(priced.url, with_api_key=True)
    response = httpx.patch(
        priced.url + "/v1/user/me",
        headers=tenant.auth,
        json={"key_defaults": {"max_cost": "0.00002"}},
    )
    assert response.json()["key_defaults"] == {"max_total_tokens": None, "max_cost": "0.00002"}
    key = tenant.key()
    assert [chat(priced, key).status_code for _ in range(3)] == [200, 429, 429]
    seen = httpx.get(priced.url + "/v1/key", headers={"Authorization": f"Bearer {key}"}).json()
    assert seen["budgets"]["max_cost"]["source"] == "tenant_default"


def test_embeddings_cost_their_input_and_generate_nothing(
    priced: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = mint(max_tokens=1, max_cost="0.001")
    device = openai.OpenAI(base_url=priced.url + "/v1", api_key=key, max_retries=0)
    device.embeddings.create(model=DEMO_MODEL, input="hello")
    [callback] = sink.wait_for(1, event_id=event_of(key))
    assert callback["cost"] == "0.00000297"  # 11 input tokens at 0.27 per million
    seen = httpx.get(priced.url + "/v1/key", headers={"Authorization": f"Bearer {key}"}).json()
    assert seen["budgets"]["max_tokens"]["used"] == 0
    assert seen["budgets"]["max_cost"]["used"] == "0.00000297"
