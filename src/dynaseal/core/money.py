"""Money, exactly: integers of 1e-10 USD inside, decimal strings at the edges.

Floats lose cents and decimals do not fit Redis' Lua, so every amount the services add,
compare or store is an integer number of :data:`UNITS_PER_USD` ths of a dollar. A price
of up to four decimals per million tokens is then a whole number of units per token
(``0.2750`` USD per million is 2,750 units per token). Lua's numbers are doubles, exact
up to 2**53 units (:data:`MAX_UNITS`, about 900,719 USD): a budget is held at that at most.
Claims, APIs and callbacks carry amounts as decimal strings (``"0.000123"``).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

UNITS_PER_USD = 10**10
#: Largest amount held exactly by every store (Lua numbers are IEEE doubles).
MAX_UNITS = 2**53
_UNIT = Decimal(1).scaleb(-10)


class NotRepresentable(ValueError):
    """An amount finer than 1e-10 USD, or beyond :data:`MAX_UNITS`."""


def to_units(amount: Decimal) -> int:
    """``amount`` USD in units, exactly; refuses what the units cannot hold."""
    scaled = amount.scaleb(10)
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise NotRepresentable(f"{amount:f} USD is finer than 1e-10 USD")
    units = int(scaled)
    if abs(units) > MAX_UNITS:
        raise NotRepresentable(f"{amount:f} USD is more than {usd(MAX_UNITS)} USD")
    return units


def cap_units(amount: Decimal) -> int:
    """A spending cap in units: rounded down to the unit and held at :data:`MAX_UNITS`,
    so that the cap enforced is never above the one written."""
    units = int(amount.scaleb(10).to_integral_value(ROUND_FLOOR))
    return max(0, min(units, MAX_UNITS))


def text(amount: Decimal) -> str:
    """A plain decimal string, without exponent or trailing zeros: ``"0.0000123"``."""
    written = format(amount.normalize(), "f")
    return "0" if written == "-0" else written


def usd(units: int) -> str:
    """Units as a plain decimal string of USD."""
    return text(to_usd(units))


def to_usd(units: int) -> Decimal:
    return Decimal(units) * _UNIT


def parse_usd(value: Any) -> Decimal:
    """A USD amount from outside (a setting, an API body, a callback): a decimal string
    such as ``"0.25"`` (or an int), never a float, not negative, exact in units."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError('must be a decimal string such as "0.25" (USD), not a number')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be a finite amount of USD, not negative")
    try:
        to_units(amount)
    except NotRepresentable as exc:
        raise ValueError(str(exc)) from None
    return amount


#: A USD amount in an API model: a :class:`~decimal.Decimal` written as :func:`text`.
Usd = Annotated[Decimal, PlainSerializer(text, return_type=str)]
#: A USD amount read from outside, checked by :func:`parse_usd`, written as :func:`text`.
UsdIn = Annotated[Decimal, BeforeValidator(parse_usd), PlainSerializer(text, return_type=str)]
