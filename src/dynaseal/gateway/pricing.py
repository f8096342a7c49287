"""What a request costs: the price of each model, from the gateway's table or the tenant's.

A price is USD per **million** tokens for ``input`` (prompt), ``cached_input`` (prompt
tokens the upstream served from its cache; ``input`` when not given) and ``output``
(generated tokens, reasoning included). The operator sets the table in a JSON or TOML
file (``PRICES_FILE``) and/or a JSON environment variable (``MODEL_PRICES``, which wins
model by model)::

    {"deepseek-chat": {"input": "0.27", "cached_input": "0.07", "output": "1.10"}}

and a tenant may override models for its own keys (``PATCH /v1/user/me
{"model_prices": ...}``). Money is counted exactly in units of 1e-10 USD
(:mod:`dynaseal.core.money`), so a price may have at most four decimals: others are
refused, never rounded, as a rounded price would charge what nobody set.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from dynaseal.core.money import NotRepresentable, to_units, usd
from dynaseal.core.settings import ConfigError

PER_MILLION = 10**6
#: Highest price accepted, USD per million tokens: keeps every reservation far inside
#: the exact range of the budget stores.
MAX_PRICE = Decimal(10_000)
PRICE_FIELDS = ("input", "cached_input", "output")


class PriceError(ValueError):
    """A price that cannot be used, with a message naming the model and the field."""


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in money units per token."""

    input: int
    cached_input: int
    output: int

    @property
    def prompt_token(self) -> int:
        """What a prompt token may cost before the upstream says which were cached."""
        return max(self.input, self.cached_input)

    def cost(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> int:
        cached = min(cached_tokens, prompt_tokens)
        return (
            (prompt_tokens - cached) * self.input
            + cached * self.cached_input
            + completion_tokens * self.output
        )

    def per_million(self) -> dict[str, str]:
        """The price as it is written: USD per million tokens, decimal strings."""
        return {name: usd(getattr(self, name) * PER_MILLION) for name in PRICE_FIELDS}


def _per_token(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PriceError(f'{where} must be a decimal string such as "0.27" (USD per million)')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise PriceError(f"{where} is not a decimal number: {value!r}") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        raise PriceError(f"{where} must be from 0 to {MAX_PRICE} (USD per million tokens)")
    try:
        per_million = to_units(amount)
    except NotRepresentable:
        per_million = 1  # not a whole number of units per token either
    if per_million % PER_MILLION:
        raise PriceError(
            f"{where} has more than 4 decimals ({value}): the gateway counts money in "
            "units of 1e-10 USD, so a price per million tokens needs at most 4"
        )
    return per_million // PER_MILLION


def parse_price(entry: Any, where: str) -> Price:
    """One model's entry: ``{"input", "output"[, "cached_input"]}``."""
    if not isinstance(entry, Mapping):
        raise PriceError(f'{where} must be an object such as {{"input": "0.27", "output": "1.1"}}')
    unknown = set(entry) - set(PRICE_FIELDS)
    if unknown:
        raise PriceError(f"{where} has unknown fields {sorted(unknown)}: use {PRICE_FIELDS}")
    for required in ("input", "output"):
        if entry.get(required) is None:
            raise PriceError(f"{where}.{required} is required")
    input_price = _per_token(entry["input"], f"{where}.input")
    cached = entry.get("cached_input")
    return Price(
        input=input_price,
        cached_input=input_price if cached is None else _per_token(cached, f"{where}.cached_input"),
        output=_per_token(entry["output"], f"{where}.output"),
    )


def parse_prices(data: Any, where: str) -> dict[str, Price]:
    """A whole table: model name -> price."""
    if not isinstance(data, Mapping):
        raise PriceError(f"{where} must map model names to prices")
    prices = {}
    for model, entry in data.items():
        if not isinstance(model, str) or not model or len(model) > 256:
            raise PriceError(f"{where}: model names must be non-empty strings")
        prices[model] = parse_price(entry, f"{where}[{model!r}]")
    return prices


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"PRICES_FILE: cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text, parse_float=Decimal)
        return json.loads(text, parse_float=Decimal)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"PRICES_FILE: {path} is not valid JSON or TOML: {exc}") from None


def load_prices(prices_file: Path | None, model_prices: str | None) -> dict[str, Price]:
    """The gateway's table: the file's entries, then the environment variable's on top.
    Anything unusable stops the start with a :class:`ConfigError` naming the variable."""
    table: dict[str, Price] = {}
    if prices_file is not None:
        try:
            table.update(parse_prices(_read_file(prices_file), "PRICES_FILE"))
        except PriceError as exc:
            raise ConfigError(str(exc)) from None
    if model_prices:
        try:
            table.update(
                parse_prices(json.loads(model_prices, parse_float=Decimal), "MODEL_PRICES")
            )
        except json.JSONDecodeError as exc:
            raise ConfigError(f"MODEL_PRICES: not valid JSON: {exc}") from None
        except PriceError as exc:
            raise ConfigError(str(exc)) from None
    return table
