"""The budget rules (``budget.rules.decide``), and the Redis Lua script that must apply
them exactly: both are run side by side on random sequences of reservations, releases
and revocations over the three budgets, in the private Redis of the suite."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaseal.core.money import MAX_UNITS
from dynaseal.gateway.budget.redis import (
    RELEASE_LUA,
    RESERVE_LUA,
    REVOKE_LUA,
    SEED_LUA,
    decision_of,
    release_args,
    reserve_args,
)
from dynaseal.gateway.budget.rules import (
    Amounts,
    Ask,
    Budgets,
    Refusal,
    Refused,
    Reservation,
    decide,
    decide_chain,
    hold,
    short_message,
)
from support.redis_server import RedisServer


@dataclass
class Key:
    """A key's state as ``decide`` reads it, updated as the stores update theirs."""

    spent: int = 0
    reserved: int = 0
    total_spent: int = 0
    total_reserved: int = 0
    cost_spent: int = 0
    cost_reserved: int = 0
    requests: int = 0
    revoked: bool = False
    held: list[Reservation] = field(default_factory=list)

    def release(self, reservation: Reservation, used: Amounts) -> None:
        self.reserved -= reservation.amounts.tokens
        self.total_reserved -= reservation.amounts.total_tokens
        self.cost_reserved -= reservation.amounts.cost
        self.spent += used.tokens
        self.total_spent += used.total_tokens
        self.cost_spent += used.cost

    def hash(self) -> dict[bytes, bytes]:
        values = {
            "spent": self.spent,
            "reserved": self.reserved,
            "tspent": self.total_spent,
            "treserved": self.total_reserved,
            "cspent": self.cost_spent,
            "creserved": self.cost_reserved,
            "requests": self.requests,
            "revoked": int(self.revoked),
        }
        return {name.encode(): str(value).encode() for name, value in values.items()}


def ask(
    cap: int | None = None,
    *,
    prompt: int = 10,
    choices: int = 1,
    prompt_cost: int = 0,
    price: int = 0,
) -> Ask:
    return Ask(prompt, prompt_cost, price, cap, choices)


def test_without_a_cap_what_is_left_to_generate_is_forwarded_and_prompts_do_not_count() -> None:
    reservation = decide(Key(spent=30, reserved=20), Budgets(100), max_requests=None, ask=ask())
    assert reservation == Reservation(Amounts(50), 50, 10, Budgets(0))


def test_the_original_device_request_fits_the_original_key() -> None:
    """A key of max_tokens 100 admits a request of max_tokens 100, whatever its prompt."""
    decision = decide(Key(), Budgets(100), max_requests=None, ask=ask(100, prompt=5000))
    assert decision == Reservation(Amounts(100), 100, 5000, Budgets(0))


def test_what_is_left_is_shared_between_the_choices() -> None:
    decision = decide(Key(), Budgets(100), max_requests=None, ask=ask(choices=3))
    assert decision == Reservation(Amounts(99), 33, 10, Budgets(1))


def test_a_cap_beyond_a_budget_is_refused_not_lowered_and_says_what_fits() -> None:
    assert decide(Key(spent=60), Budgets(100), max_requests=None, ask=ask(41)) == Refused(
        Refusal.SHORT, "max_tokens", 40, 40, 0
    )
    assert isinstance(
        decide(Key(spent=60), Budgets(100), max_requests=None, ask=ask(40)), Reservation
    )


def test_the_total_budget_holds_the_prompt_estimate_and_the_cap() -> None:
    budgets = Budgets(1000, total_tokens=500)
    held = decide(Key(total_spent=100), budgets, max_requests=None, ask=ask(50, prompt=300))
    assert held == Reservation(Amounts(50, 350, 0), 50, 300, Budgets(950, 50))
    short = decide(Key(total_spent=100), budgets, max_requests=None, ask=ask(101, prompt=300))
    assert short == Refused(Refusal.SHORT, "max_total_tokens", 400, 100, 0)
    # Without a cap, the smallest budget gives it: 400 - 300 of the total.
    capped = decide(Key(total_spent=100), budgets, max_requests=None, ask=ask(prompt=300))
    assert isinstance(capped, Reservation) and capped.completion_cap == 100


def test_the_cost_budget_holds_the_prompt_at_its_price_and_the_cap_at_the_output_price() -> None:
    budgets = Budgets(1000, cost=10_000)
    money = {"prompt_cost": 2_000, "price": 100}  # the prompt may cost 2,000 units
    held = decide(Key(cost_spent=1_000), budgets, max_requests=None, ask=ask(70, **money))
    assert held == Reservation(Amounts(70, 0, 9_000), 70, 10, Budgets(930, None, 0))
    short = decide(Key(cost_spent=1_000), budgets, max_requests=None, ask=ask(71, **money))
    assert short == Refused(Refusal.SHORT, "max_cost", 9_000, 70, 0)
    free = decide(Key(), budgets, max_requests=None, ask=ask(5, prompt_cost=10_001, price=0))
    assert free == Refused(Refusal.SHORT, "max_cost", 10_000, -1, 0)


def test_revocation_and_the_request_limit_come_first() -> None:
    spent = Key(spent=100, revoked=True, requests=1)
    assert decide(spent, Budgets(100), max_requests=1, ask=ask()) == Refused(Refusal.REVOKED)
    used = Key(requests=2)
    assert decide(used, Budgets(100), max_requests=2, ask=ask()) == Refused(
        Refusal.NO_REQUESTS_LEFT
    )
    last = decide(Key(requests=1), Budgets(100), max_requests=2, ask=ask(10))
    assert isinstance(last, Reservation) and last.requests_left == 0


def test_a_request_that_generates_nothing_holds_its_prompt_only() -> None:
    """Embeddings: a cap of 0, admitted while the prompt fits, whatever is left to generate."""
    budgets = Budgets(10, total_tokens=100, cost=1_000)
    held = decide(Key(spent=10), budgets, max_requests=None, ask=ask(0, prompt=40, prompt_cost=400))
    assert held == Reservation(Amounts(0, 40, 400), 0, 40, Budgets(0, 60, 600))
    short = decide(Key(), budgets, max_requests=None, ask=ask(0, prompt=101))
    assert short == Refused(Refusal.SHORT, "max_total_tokens", 100, -1, 0)


def test_hold_counts_the_request_and_its_amounts() -> None:
    key = Key()
    hold(key, Amounts(5, 15, 500))
    assert (key.reserved, key.total_reserved, key.cost_reserved, key.requests) == (5, 15, 500, 1)


def test_a_chain_is_held_by_every_key_and_capped_by_the_least() -> None:
    """A child key and its parent: the request fits both, holds the same on both, and
    what is left is the smaller of the two."""
    parent, child = Key(spent=70), Key(spent=5)
    chain = [(parent, Budgets(100), None), (child, Budgets(50, total_tokens=200), 3)]
    decision = decide_chain(chain, ask(prompt=20))
    assert decision == Reservation(Amounts(30, 50, 0), 30, 20, Budgets(0, 150), 2)
    assert decide_chain(chain, ask(31)) == Refused(Refusal.SHORT, "max_tokens", 30, 30, 0, 0)
    parent.revoked = True
    assert decide_chain(chain, ask()) == Refused(Refusal.REVOKED, index=0)
    parent.revoked, child.requests = False, 3
    assert decide_chain(chain, ask()) == Refused(Refusal.NO_REQUESTS_LEFT, index=1)


@pytest.mark.parametrize(
    ("refused", "asked", "message"),
    [
        (
            Refused(Refusal.SHORT, "max_tokens", 0, 0, 0),
            ask(10),
            "This key's max_tokens budget (generated tokens) is spent; this request asks for "
            "up to 10 generated tokens.",
        ),
        (
            Refused(Refusal.SHORT, "max_tokens", 0, 0, 30),
            ask(),
            "This key's max_tokens budget (generated tokens) has 0 generated tokens left "
            "(30 more held by requests in progress); this request asks for at least 1 "
            "generated token.",
        ),
        (
            Refused(Refusal.SHORT, "max_tokens", 40, 20, 0),
            ask(25, choices=2),
            "This key's max_tokens budget (generated tokens) has 40 generated tokens left; "
            "this request asks for up to 50 generated tokens (25 each for n=2). "
            "max_tokens up to 20 would fit.",
        ),
        (
            Refused(Refusal.SHORT, "max_total_tokens", 897, -1610, 0),
            ask(prompt=2507),
            "This key's max_total_tokens budget (prompt + generated tokens) has 897 tokens "
            "left; this request needs an estimated 2507 prompt tokens plus at least 1 "
            "generated token.",
        ),
        (
            Refused(Refusal.SHORT, "max_cost", 120_000, 3, 0),
            ask(10, prompt=100, prompt_cost=90_000, price=10_000),
            "This key's max_cost budget (USD) has 0.000012 USD left; this request may cost "
            "0.000019 USD (an estimated 100 prompt tokens plus up to 10 generated tokens). "
            "max_tokens up to 3 would fit.",
        ),
    ],
)
def test_refusals_say_which_budget_what_is_left_and_what_was_asked(
    refused: Refused, asked: Ask, message: str
) -> None:
    assert short_message(refused, asked) == message


# -- the Lua script, held to decide() -------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    budgets: Budgets
    key: Key
    max_requests: int | None
    steps: list[tuple[object, ...]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A key and what happens to it, in small figures (where every branch is met) or in
    figures near 2**53, where Lua's doubles would first go wrong."""
    small = draw(st.sampled_from([True, True, True, False]))
    top = 3000 if small else MAX_UNITS // 2
    spent = [draw(st.integers(0, top // 3)) for _ in range(3)]
    # A budget is what was spent plus some headroom (or a little less: overspent).
    headroom = st.sampled_from([(-top // 20, 0)] + [(top // 10, top)] * 6).flatmap(
        lambda bounds: st.integers(*bounds)
    )
    budgets = [spent[i] + draw(headroom) for i in range(3)]
    key = Key(
        spent=spent[0],
        total_spent=spent[1],
        cost_spent=spent[2],
        requests=draw(st.integers(0, 2)),
        revoked=draw(st.sampled_from([False] * 9 + [True])),  # mostly live keys
    )
    caps = {
        "none": st.none(),
        "zero": st.just(0),  # embeddings: the prompt alone
        "cap": st.integers(1, 30 if small else 10**6),
        "huge": st.integers(1, 2**60),
    }
    reserve = st.tuples(
        st.just("reserve"),
        st.integers(0, 600),  # prompt estimate
        st.integers(0, top // 20),  # prompt cost
        st.integers(0, 5 if small else 10**8),  # output price
        st.sampled_from(["none"] * 2 + ["zero"] + ["cap"] * 7 + ["huge"]).flatmap(caps.__getitem__),
        st.sampled_from([1, 1, 1, 1, 2, 3, 16]),  # choices
    )
    used = st.integers(0, top // 10)
    release = st.tuples(st.just("release"), st.integers(0, 50), st.tuples(used, used, used))
    steps = draw(st.lists(st.sampled_from([reserve, release]).flatmap(lambda s: s), max_size=30))
    if draw(st.sampled_from([False, False, True])):  # a revoked key refuses all after
        steps.insert(draw(st.integers(0, len(steps))), ("revoke",))
    return Scenario(
        Budgets(
            max(1, budgets[0]),
            draw(st.sampled_from([None, max(0, budgets[1])])),
            draw(st.sampled_from([None, max(0, budgets[2])])),
        ),
        key,
        draw(st.sampled_from([None, None, None, 1, 3, 8])),
        steps,
    )


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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_the_lua_script_decides_as_the_rules_do(
    lua: tuple[redis.Redis, dict[str, redis.client.Script]], scenario: Scenario
) -> None:
    client, script = lua
    name = f"test:budget:{uuid.uuid4().hex}"
    key, budgets, max_requests = scenario.key, scenario.budgets, scenario.max_requests
    seed = [key.spent, key.total_spent, key.cost_spent, key.requests, int(key.revoked)]
    script["seed"](keys=[name], args=[*seed, int(time.time()) + 600])
    try:
        for step in scenario.steps:
            if step[0] == "reserve":
                _, prompt, prompt_cost, price, cap, choices = step
                asked = Ask(prompt, prompt_cost, price, cap, choices)  # type: ignore[arg-type]
                expected = decide(key, budgets, max_requests=max_requests, ask=asked)
                answer = script["reserve"](
                    keys=[name], args=reserve_args([max_requests], [budgets], asked)
                )
                assert decision_of(answer, [budgets], asked) == expected, step
                if isinstance(expected, Reservation):
                    hold(key, expected.amounts)
                    key.held.append(expected)
            elif step[0] == "release" and key.held:
                _, which, used = step
                assert isinstance(which, int) and isinstance(used, tuple)
                held = key.held.pop(which % len(key.held))
                script["release"](keys=[name], args=release_args(held, Amounts(*used)))
                key.release(held, Amounts(*used))
            elif step[0] == "revoke":
                script["revoke"](keys=[name], args=[])
                key.revoked = True
            assert client.hgetall(name) == key.hash(), step
    finally:
        client.delete(name)


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[Scenario], list[tuple[object, ...]]]:
    """A key with its steps (as above) and one to three descendants with live keys and
    budgets of the same order, so that reservations often pass every key of the chain
    and any key may be the one that binds."""
    first = draw(scenarios())
    links = [first]
    amount = st.integers(0, 3000)
    for _ in range(draw(st.integers(1, 3))):
        spent = [draw(st.integers(0, 300)) for _ in range(3)]
        budgets = Budgets(
            spent[0] + draw(st.integers(1, 3000)),
            draw(st.none() | amount.map(lambda extra, s=spent[1]: s + extra)),
            draw(st.none() | amount.map(lambda extra, s=spent[2]: s + extra)),
        )
        key = Key(spent=spent[0], total_spent=spent[1], cost_spent=spent[2])
        links.append(Scenario(budgets, key, draw(st.sampled_from([None, None, 5, 20])), []))
    return links, first.steps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=chains())
def test_the_lua_script_decides_for_a_chain_as_the_rules_do(
    lua: tuple[redis.Redis, dict[str, redis.client.Script]],
    chain: tuple[list[Scenario], list[tuple[object, ...]]],
) -> None:
    client, script = lua
    links, steps = chain
    names = [f"test:budget:{uuid.uuid4().hex}" for _ in links]
    keys = [link.key for link in links]
    budgets = [link.budgets for link in links]
    limits = [link.max_requests for link in links]
    for name, key in zip(names, keys, strict=True):
        seed = [key.spent, key.total_spent, key.cost_spent, key.requests, int(key.revoked)]
        script["seed"](keys=[name], args=[*seed, int(time.time()) + 600])
    try:
        for step in steps:
            if step[0] == "reserve":
                _, prompt, prompt_cost, price, cap, choices = step
                asked = Ask(prompt, prompt_cost, price, cap, choices)  # type: ignore[arg-type]
                expected = decide_chain(list(zip(keys, budgets, limits, strict=True)), asked)
                answer = script["reserve"](keys=names, args=reserve_args(limits, budgets, asked))
                assert decision_of(answer, budgets, asked) == expected, step
                if isinstance(expected, Reservation):
                    for key in keys:
                        hold(key, expected.amounts)
                    keys[0].held.append(expected)
            elif step[0] == "release" and keys[0].held:
                _, which, used = step
                assert isinstance(which, int) and isinstance(used, tuple)
                held = keys[0].held.pop(which % len(keys[0].held))
                for name, key in zip(names, keys, strict=True):
                    script["release"](keys=[name], args=release_args(held, Amounts(*used)))
                    key.release(held, Amounts(*used))
            elif step[0] == "revoke":
                script["revoke"](keys=[names[-1]], args=[])
                keys[-1].revoked = True
            for name, key in zip(names, keys, strict=True):
                assert client.hgetall(name) == key.hash(), step
    finally:
        client.delete(*names)
