"""The budget rules (``budget.rules.decide``), and the Redis Lua script that must apply
them exactly: both are run side by side on random sequences of reservations, releases
and revocations, in the private Redis of the suite."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaseal.gateway.budget.redis import (
    RELEASE_LUA,
    RESERVE_LUA,
    REVOKE_LUA,
    SEED_LUA,
    decision_of,
    reserve_args,
)
from dynaseal.gateway.budget.rules import Refusal, Reservation, decide
from support.redis_server import RedisServer


def ask(
    *,
    budget: int = 1000,
    spent: int = 0,
    reserved: int = 0,
    requests: int = 0,
    revoked: bool = False,
    max_requests: int | None = None,
    prompt: int = 10,
    cap: int | None = None,
    choices: int = 1,
) -> Reservation | tuple[Refusal, int]:
    return decide(
        budget=budget,
        spent=spent,
        reserved=reserved,
        requests=requests,
        revoked=revoked,
        max_requests=max_requests,
        prompt_estimate=prompt,
        requested_cap=cap,
        choices=choices,
    )


def test_without_a_cap_the_request_may_use_what_is_left() -> None:
    assert ask(budget=1000, spent=300, reserved=200, prompt=100) == Reservation(500, 400, 100)


def test_what_is_left_is_shared_between_the_choices() -> None:
    assert ask(budget=1000, prompt=100, choices=3) == Reservation(100 + 300 * 3, 300, 100)


def test_a_cap_within_the_budget_is_reserved_as_asked() -> None:
    assert ask(budget=1000, prompt=100, cap=50, choices=2) == Reservation(200, 50, 100)


def test_a_cap_beyond_the_budget_is_refused_not_lowered() -> None:
    assert ask(budget=1000, spent=900, prompt=50, cap=51) == (Refusal.CAP_TOO_HIGH, 100)
    assert ask(budget=1000, spent=900, prompt=50, cap=50) == Reservation(100, 50, 50)


def test_a_budget_that_cannot_fit_one_completion_token_is_spent() -> None:
    assert ask(budget=1000, spent=990, prompt=10) == (Refusal.SPENT, 10)
    assert ask(budget=1000, spent=1200) == (Refusal.SPENT, -200)


def test_revocation_and_the_request_limit_come_first() -> None:
    assert ask(revoked=True, max_requests=1, requests=1) == (Refusal.REVOKED, 0)
    assert ask(max_requests=2, requests=2) == (Refusal.NO_REQUESTS_LEFT, 0)
    assert isinstance(ask(max_requests=2, requests=1), Reservation)


@dataclass
class Model:
    """A key's budget as ``decide`` sees it, updated as the stores update theirs."""

    budget: int
    spent: int
    requests: int
    revoked: bool
    reserved: int = 0
    held: list[Reservation] = field(default_factory=list)

    def hash(self) -> dict[bytes, bytes]:
        values = (self.budget, self.spent, self.reserved, self.requests, int(self.revoked))
        names = (b"budget", b"spent", b"reserved", b"requests", b"revoked")
        return {name: str(value).encode() for name, value in zip(names, values, strict=True)}


reserves = st.tuples(
    st.just("reserve"),
    st.integers(0, 600),  # prompt estimate
    st.none() | st.integers(1, 800),  # requested cap
    st.integers(1, 4),  # choices
)
releases = st.tuples(st.just("release"), st.integers(0, 50), st.integers(0, 1200))
steps = st.lists(st.one_of(reserves, releases, st.just(("revoke",))), max_size=30)


@pytest.fixture(scope="module")
def lua(redis_server: RedisServer) -> Iterator[tuple[redis.Redis, dict[str, redis.client.Script]]]:
    client = redis.Redis.from_url(redis_server.url)
    scripts = {
        "reserve": client.register_script(RESERVE_LUA),
        "seed": client.register_script(SEED_LUA),
        "release": client.register_script(RELEASE_LUA),
        "revoke": client.register_script(REVOKE_LUA),
    }
    yield client, scripts
    client.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    budget=st.integers(0, 5000),
    spent=st.integers(0, 5200),
    requests=st.integers(0, 5),
    revoked=st.sampled_from([False, False, False, True]),  # mostly live keys
    max_requests=st.none() | st.integers(1, 8),
    sequence=steps,
)
def test_the_lua_script_decides_as_the_rules_do(
    lua: tuple[redis.Redis, dict[str, redis.client.Script]],
    budget: int,
    spent: int,
    requests: int,
    revoked: bool,
    max_requests: int | None,
    sequence: list[tuple[object, ...]],
) -> None:
    client, script = lua
    key = f"test:budget:{uuid.uuid4().hex}"
    model = Model(budget, spent, requests, revoked)
    script["seed"](keys=[key], args=[budget, spent, requests, int(revoked), int(time.time()) + 600])
    try:
        for step in sequence:
            if step[0] == "reserve":
                _, prompt, cap, choices = step
                assert isinstance(prompt, int) and isinstance(choices, int)
                assert cap is None or isinstance(cap, int)
                expected = ask(
                    budget=model.budget,
                    spent=model.spent,
                    reserved=model.reserved,
                    requests=model.requests,
                    revoked=model.revoked,
                    max_requests=max_requests,
                    prompt=prompt,
                    cap=cap,
                    choices=choices,
                )
                code, value = script["reserve"](
                    keys=[key], args=reserve_args(max_requests, prompt, cap, choices)
                )
                assert decision_of(code, value, prompt) == expected, step
                if isinstance(expected, Reservation):
                    model.reserved += expected.amount
                    model.requests += 1
                    model.held.append(expected)
            elif step[0] == "release" and model.held:
                _, which, used = step
                assert isinstance(which, int) and isinstance(used, int)
                held = model.held.pop(which % len(model.held))
                script["release"](keys=[key], args=[held.amount, used])
                model.reserved -= held.amount
                model.spent += used
            elif step[0] == "revoke":
                script["revoke"](keys=[key], args=[])
                model.revoked = True
            assert client.hgetall(key) == model.hash(), step
    finally:
        client.delete(key)
