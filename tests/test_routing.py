"""Model routing (ROUTING_FILE): a public model served by several upstream deployments,
chosen by weight, with fallover before the first byte, cool-down of a failing
deployment, every attempt in the ledger, /v1/models and /readyz per deployment."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import openai
import pytest

from dynaseal.core.settings import ConfigError
from dynaseal.gateway.routing.config import load_routing_file
from support.callbacks import CallbackSink
from support.commands import run_dynaseal
from support.routing import deployment, routed_gateway, router_policy
from support.servers import ServerThread, free_port, serve
from support.tenants import DEMO_MODEL, event_of, login, mint
from support.upstream import FakeUpstream
from support.waiting import eventually

MESSAGES = [{"role": "user", "content": "Say hello"}]
WEIGHTS = {"small": 1, "medium": 2, "large": 7}
FLAKY_CASES = ("429", "500", "503", "all", "break")


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict[str, FakeUpstream]]:
    """Three upstreams of their own, on loopback."""
    with ExitStack() as stack:
        fakes = {}
        for name in ("small", "medium", "large", "flaky"):
            fake = FakeUpstream()
            fake.url = stack.enter_context(serve(fake.app())).url
            fakes[name] = fake
        yield fakes


@pytest.fixture(autouse=True)
def _fresh_fleet(request: pytest.FixtureRequest) -> None:
    if "fleet" in request.fixturenames:
        for fake in request.getfixturevalue("fleet").values():
            fake.reset()


@pytest.fixture(scope="module")
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a deployment that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def sdk(gateway: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def ledger(gateway: ServerThread, key: str, rows: int) -> list[dict]:
    """The ledger rows of ``key``'s requests, oldest first, once all ``rows`` are written."""
    auth = login(gateway.url, "user1", "user1")

    def written() -> list[dict] | None:
        response = httpx.get(
            gateway.url + "/v1/usage", headers=auth, params={"event_id": event_of(key)}
        )
        assert response.status_code == 200, response.text
        found = response.json()["data"]
        return sorted(found, key=lambda r: r["started_at"]) if len(found) == rows else None

    return eventually(written)


@pytest.fixture(scope="module")
def weighted_gateway(
    tmp_path_factory: pytest.TempPathFactory, fleet: dict[str, FakeUpstream], sink: CallbackSink
) -> Iterator[ServerThread]:
    routing = "".join(
        deployment(DEMO_MODEL, f"{fleet[name].url}/v1", name=name, weight=weight)
        for name, weight in WEIGHTS.items()
    )
    with routed_gateway(
        tmp_path_factory.mktemp("weighted"), routing, callback_url=sink.url
    ) as server:
        yield server


def test_requests_spread_by_weight(
    weighted_gateway: ServerThread, fleet: dict[str, FakeUpstream]
) -> None:
    total, n = sum(WEIGHTS.values()), 1000
    key = mint(max_tokens=10**8)
    with httpx.Client(base_url=weighted_gateway.url, timeout=30) as http:
        for _ in range(n):
            response = http.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": DEMO_MODEL, "messages": MESSAGES, "max_tokens": 2},
            )
            assert response.status_code == 200
    for name, weight in WEIGHTS.items():
        p = weight / total
        spread = 6 * math.sqrt(n * p * (1 - p))  # six standard deviations
        assert abs(fleet[name].count - n * p) <= spread, (name, fleet[name].count)


@pytest.fixture(scope="module")
def failover_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    fleet: dict[str, FakeUpstream],
    hung_port: int,
    sink: CallbackSink,
) -> Iterator[ServerThread]:
    """``dead`` (nothing listens) and ``hung`` (never answers) nearly always come first;
    ``alive`` serves. Each ``flaky-<case>`` model (one per test, so that their failures
    do not add up) nearly always tries ``flaky`` first, which answers as its script says,
    then ``small``."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    routing = router_policy(
        max_attempts=3, backoff_seconds=0, cooldown_failures=2, cooldown_seconds=600
    )
    routing += deployment(DEMO_MODEL, dead, name="dead", weight=1000)
    routing += deployment(
        DEMO_MODEL,
        f"http://127.0.0.1:{hung_port}/v1",
        name="hung",
        weight=1000,
        timeout_seconds=0.5,
    )
    routing += deployment(DEMO_MODEL, f"{fleet['large'].url}/v1", name="alive", weight=0.0001)
    for case in FLAKY_CASES:
        model = f"flaky-{case}"
        routing += deployment(model, f"{fleet['flaky'].url}/v1", name=f"{model}-a", weight=1000)
        routing += deployment(model, f"{fleet['small'].url}/v1", name=f"{model}-b", weight=0.0001)
    with routed_gateway(
        tmp_path_factory.mktemp("failover"), routing, callback_url=sink.url
    ) as server:
        yield server


def test_dead_deployments_fall_over_to_the_next_and_then_rest(
    failover_gateway: ServerThread, fleet: dict[str, FakeUpstream]
) -> None:
    key = mint()
    client = sdk(failover_gateway, key)
    for stream in (False, True, False):
        if stream:
            chunks = client.chat.completions.create(
                model=DEMO_MODEL, messages=MESSAGES, stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
            text = reply.choices[0].message.content or ""
        assert text == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert fleet["large"].count == 3
    rows = ledger(failover_gateway, key, 3)
    first, second, third = ([a["deployment"] for a in r["attempts"]] for r in rows)
    assert sorted(first[:2]) == ["dead", "hung"] and first[2] == "alive"
    outcomes = {a["deployment"]: a["status"] for a in rows[0]["attempts"]}
    assert outcomes == {"dead": "connect_error", "hung": "timeout", "alive": 200}
    assert second[-1] == "alive"
    # Each failed twice (cooldown_failures = 2): both rest, only "alive" is tried now.
    assert third == ["alive"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_429_or_5xx_falls_over_before_the_first_byte(
    failover_gateway: ServerThread, fleet: dict[str, FakeUpstream], status: int
) -> None:
    fleet["flaky"].script.status = status
    model = f"flaky-{status}"
    with httpx.Client(base_url=failover_gateway.url) as http:
        response = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {mint(model=model)}"},
            json={"model": model, "messages": MESSAGES},
        )
    assert response.status_code == 200
    assert fleet["flaky"].count == 1 and fleet["small"].count == 1
    # The id the device sees is the deployment's that answered (small's first request).
    assert response.headers["x-upstream-request-id"].startswith("upstream-req-")


def test_when_every_deployment_fails_the_last_answer_is_passed_on(
    failover_gateway: ServerThread, fleet: dict[str, FakeUpstream]
) -> None:
    fleet["flaky"].script.status = 503
    fleet["small"].script.status = 503
    with pytest.raises(openai.InternalServerError) as failed:
        sdk(failover_gateway, mint(model="flaky-all")).chat.completions.create(
            model="flaky-all", messages=MESSAGES
        )
    assert failed.value.status_code == 503
    assert fleet["flaky"].count == 1 and fleet["small"].count == 1


def test_a_deployment_that_fails_after_the_first_byte_ends_the_stream_with_an_error(
    failover_gateway: ServerThread, fleet: dict[str, FakeUpstream]
) -> None:
    fleet["flaky"].script.break_after = 2
    stream = sdk(failover_gateway, mint(model="flaky-break")).chat.completions.create(
        model="flaky-break", messages=MESSAGES, stream=True
    )
    text = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            text.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(text) == "w0 w1 "
    assert "broke off" in failed.value.message
    assert fleet["small"].count == 0  # no silent retry mid-answer


@pytest.fixture(scope="module")
def mapped_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    fleet: dict[str, FakeUpstream],
    monkeypatch_module: pytest.MonkeyPatch,
    sink: CallbackSink,
) -> Iterator[ServerThread]:
    monkeypatch_module.setenv("TEST_MEDIUM_KEY", "sk-medium-from-the-environment")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    routing = deployment(
        DEMO_MODEL,
        f"{fleet['medium'].url}/v1",
        name="medium",
        upstream_model="medium-7b-instruct",
        api_key_env="TEST_MEDIUM_KEY",
    )
    routing += deployment("down-model", dead, name="down")
    with routed_gateway(
        tmp_path_factory.mktemp("mapped"), routing, callback_url=sink.url
    ) as server:
        yield server


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_upstream_gets_its_model_name_and_the_key_from_the_environment(
    mapped_gateway: ServerThread, fleet: dict[str, FakeUpstream]
) -> None:
    sdk(mapped_gateway, mint()).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    assert fleet["medium"].requests[0]["model"] == "medium-7b-instruct"
    assert fleet["medium"].authorizations == ["Bearer sk-medium-from-the-environment"]


def test_models_lists_what_the_key_may_call(mapped_gateway: ServerThread) -> None:
    key = mint(model=[DEMO_MODEL, "down-model", "unrouted-model"])
    assert [m.id for m in sdk(mapped_gateway, key).models.list()] == [DEMO_MODEL, "down-model"]
    with pytest.raises(openai.NotFoundError):
        sdk(mapped_gateway, key).models.retrieve("unrouted-model")
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(mapped_gateway, key).chat.completions.create(model="unrouted-model", messages=MESSAGES)
    assert "not served" in refused.value.message


def test_readyz_covers_each_deployment(mapped_gateway: ServerThread) -> None:
    ready = httpx.get(mapped_gateway.url + "/readyz")
    assert ready.status_code == 503  # down-model has no reachable deployment
    body = ready.json()
    assert body["checks"]["upstream"] == "unavailable"
    assert body["deployments"] == {"medium": "ok", "down": "unavailable"}


def test_an_endpoint_no_deployment_serves_is_refused_before_budget(
    tmp_path: Path, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    routing = deployment("*", f"{upstream.url}/v1", endpoints=["chat", "completions"])
    with routed_gateway(tmp_path, routing, callback_url=sink.url) as gateway:
        with pytest.raises(openai.BadRequestError) as refused:
            sdk(gateway, mint()).embeddings.create(model=DEMO_MODEL, input="hello")
        assert "not served for embeddings" in refused.value.message
        assert upstream.count == 0
        assert httpx.get(gateway.url + "/readyz").json()["deployments"] == {"*#1": "ok"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[deployments]]\nmodel = 'm'\n", "base_url: Field required"),
        ("deployments = [", "not valid TOML"),
        (deployment("m", "http://x/v1", weight=-1), "weight: Input should be greater than 0"),
        (deployment("m", "http://x/v1", endpoints=["chat", "images"]), "endpoints.1"),
        (deployment("m", "http://x/v1", api_key="sk-inline"), "Extra inputs are not permitted"),
        (deployment("m", "http://u:p@x/v1"), "no credentials in base_url"),
        (deployment("m", "http://x/v1", api_key_env="UNSET_KEY_VARIABLE"), "UNSET_KEY_VARIABLE"),
        (deployment("m", "http://x/v1", name="x") * 2, "names must differ: x"),
    ],
)
def test_a_bad_routing_file_is_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_routing_file(path)
    assert str(error.value).startswith("ROUTING_FILE: ") and expected in str(error.value)


def test_the_gateway_refuses_to_start_on_a_bad_routing_setup(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(deployment("m", "http://x/v1", api_key_env="UNSET_KEY_VARIABLE"))
    missing = run_dynaseal(
        "gateway", "--port", "0", cwd=tmp_path, env={"ROUTING_FILE": str(path)}, timeout=30
    )
    assert missing.returncode == 2 and "UNSET_KEY_VARIABLE" in missing.stderr
    path.write_text(deployment("m", "http://x/v1"))
    both = run_dynaseal(
        "gateway",
        "--port",
        "0",
        cwd=tmp_path,
        env={"ROUTING_FILE": str(path), "OPENAI_BASE_URL": "http://x/v1"},
        timeout=30,
    )
    assert both.returncode == 2
    assert "ROUTING_FILE" in both.stderr and "OPENAI_BASE_URL" in both.stderr
