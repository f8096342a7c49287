"""Exact money and the price table: what is accepted, what is refused and why, and what a
request costs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dynaseal.core.money import MAX_UNITS, NotRepresentable, cap_units, to_units, usd
from dynaseal.core.settings import ConfigError
from dynaseal.gateway.pricing import Price, PriceError, load_prices, parse_price
from dynaseal.gateway.services import GatewayServices
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.keys import mint_key, peek_key


def test_money_is_exact_units_of_1e_10_usd() -> None:
    assert to_units(Decimal("0.27")) == 2_700_000_000
    assert usd(137_000) == "0.0000137" and usd(10**10) == "1" and usd(0) == "0"
    with pytest.raises(NotRepresentable, match="finer than 1e-10"):
        to_units(Decimal("0.00000000001"))
    with pytest.raises(NotRepresentable, match=r"more than 900719\.9254740992"):
        to_units(Decimal("1000000"))


def test_a_cap_is_rounded_down_and_held_within_the_exact_range() -> None:
    assert cap_units(Decimal("0.00000000019")) == 1  # never above the cap written
    assert cap_units(Decimal("999999999999")) == MAX_UNITS


def test_a_price_per_million_tokens_becomes_units_per_token() -> None:
    price = parse_price({"input": "0.27", "cached_input": "0.07", "output": 1}, "x")
    assert price == Price(input=2_700, cached_input=700, output=10_000)
    assert price.per_million() == {"input": "0.27", "cached_input": "0.07", "output": "1"}
    assert parse_price({"input": "2", "output": "8"}, "x").cached_input == 20_000


def test_what_a_request_costs() -> None:
    price = Price(input=2_700, cached_input=700, output=11_000)
    assert price.cost(prompt_tokens=11, cached_tokens=0, completion_tokens=8) == 117_700
    assert price.cost(prompt_tokens=11, cached_tokens=5, completion_tokens=8) == 107_700
    assert price.cost(prompt_tokens=3, cached_tokens=9, completion_tokens=0) == 2_100
    # Before the upstream says what was cached, a prompt token costs the dearer price.
    assert Price(input=1, cached_input=5, output=0).prompt_token == 5


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"input": "0.01875", "output": "1"}, r"x.input has more than 4 decimals \(0.01875\)"),
        ({"input": 0.5, "output": "1"}, 'x.input must be a decimal string such as "0.27"'),
        ({"input": True, "output": "1"}, "x.input must be a decimal string"),
        ({"input": "abc", "output": "1"}, "x.input is not a decimal number"),
        ({"input": "NaN", "output": "1"}, "x.input must be from 0 to 10000"),
        ({"input": "10000.0001", "output": "1"}, "x.input must be from 0 to 10000"),
        ({"input": "1"}, "x.output is required"),
        ("1.0", "x must be an object"),
    ],
)
def test_prices_that_cannot_be_used_are_refused_with_a_reason(entry: object, message: str) -> None:
    with pytest.raises(PriceError, match=message):
        parse_price(entry, "x")


def test_the_table_comes_from_a_file_and_the_variable_wins(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text('[a]\ninput = 0.1\noutput = "0.2"\n\n[b]\ninput = "1"\noutput = "2"\n')
    table = load_prices(toml, '{"b": {"input": 3, "output": 4.5}}')
    assert table == {
        "a": Price(1_000, 1_000, 2_000),
        "b": Price(30_000, 30_000, 45_000),
    }
    as_json = tmp_path / "prices.json"
    as_json.write_text('{"a": {"input": 0.1234, "output": 0}}')  # numbers read exactly
    assert load_prices(as_json, None) == {"a": Price(1_234, 1_234, 0)}


@pytest.mark.parametrize(
    ("file_text", "variable", "message"),
    [
        (None, "{not json", "MODEL_PRICES: not valid JSON"),
        (None, '{"m": {"input": "0.00001", "output": "1"}}', "MODEL_PRICES\\['m'\\].input"),
        (None, "[1, 2]", "MODEL_PRICES must map model names to prices"),
        ("[m]\ninput = ", None, "PRICES_FILE: .* is not valid JSON or TOML"),
        ('{"m": {"output": "1"}}', None, r"PRICES_FILE\['m'\].input is required"),
    ],
)
def test_a_gateway_with_an_unusable_price_table_does_not_start(
    tmp_path: Path, file_text: str | None, variable: str | None, message: str
) -> None:
    prices_file = None
    if file_text is not None:
        prices_file = tmp_path / ("prices.toml" if "[" in file_text else "prices.json")
        prices_file.write_text(file_text)
    settings = GatewaySettings(
        database_url=f"sqlite:///{tmp_path / 'g.db'}",
        prices_file=prices_file,
        model_prices=variable,
    )
    with pytest.raises(ConfigError, match=message):
        GatewayServices.build(settings)


def test_a_missing_prices_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"PRICES_FILE: cannot read .*nowhere\.json"):
        load_prices(tmp_path / "nowhere.json", None)


def test_mint_key_writes_the_optional_budgets_the_gateway_reads() -> None:
    minted = mint_key(
        "s" * 32,
        tenant_id="t1",
        model="m",
        max_tokens=100,
        max_total_tokens=5_000,
        max_cost=Decimal("0.25"),
    )
    claims = peek_key(minted.token).claims
    assert (claims["max_total_tokens"], claims["max_cost"]) == (5_000, "0.25")
    assert (minted.max_total_tokens, minted.max_cost) == (5_000, Decimal("0.25"))
    plain = mint_key("s" * 32, tenant_id="t1", model="m", max_tokens=100)
    assert "max_cost" not in plain.claims and plain.max_cost is None
    assert mint_key("s" * 32, tenant_id="t", model="m", max_tokens=1, max_cost=Decimal("1E+1"))


@pytest.mark.parametrize(
    "budgets",
    [
        {"max_cost": 0.25},  # a float would lose cents
        {"max_cost": "1e3"},
        {"max_cost": "0"},
        {"max_total_tokens": 0},
        {"max_total_tokens": 2**60},
    ],
)
def test_mint_key_refuses_budgets_the_gateway_would_refuse(budgets: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="max_"):
        mint_key("s" * 32, tenant_id="t1", model="m", max_tokens=100, **budgets)  # type: ignore[arg-type]
