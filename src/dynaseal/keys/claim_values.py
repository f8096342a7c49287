"""Reading single claims strictly: one rule per kind of value, shared by tenant-signed
keys and child keys so that both refuse the same malformed values the same way."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from dynaseal.keys.errors import InvalidKey
from dynaseal.keys.jwk import is_thumbprint

#: Integer claims above this are refused: the largest integer every JSON reader keeps
#: exact, and far inside the 64-bit columns budgets are stored in.
MAX_INT_CLAIM = 2**53
#: ``max_cost`` is USD as a plain decimal string: up to 12 digits before the point and
#: 12 after, so it fits any NUMERIC column the ledger keeps costs in.
_COST = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$")
_MAX_MODELS = 64
_MAX_NAME_LENGTH = 256


def int_claim(claims: dict[str, Any], name: str, *, required: bool, minimum: int = 0) -> Any:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidKey(f"claim {name} missing")
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not minimum <= value <= MAX_INT_CLAIM
    ):
        raise InvalidKey(f"claim {name} must be an integer from {minimum} to {MAX_INT_CLAIM}")
    return value


def time_claim(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidKey(f"claim {name} missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidKey(f"claim {name} must be a unix time")
    if value <= 0:
        raise InvalidKey(f"claim {name} must be a positive unix time")
    return float(value)


def str_claim(claims: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME_LENGTH:
        raise InvalidKey(f"claim {name} must be a non-empty string")
    return value


def models_claim(claims: dict[str, Any]) -> tuple[str, ...] | None:
    """The ``models`` list, if the claims have one."""
    listed = claims.get("models")
    if listed is None:
        return None
    if (
        not isinstance(listed, list)
        or not listed
        or len(listed) > _MAX_MODELS
        or not all(isinstance(m, str) and m and len(m) <= _MAX_NAME_LENGTH for m in listed)
    ):
        raise InvalidKey("claim models must be a non-empty list of names")
    return tuple(listed)


def cost_claim(claims: dict[str, Any], name: str = "max_cost") -> Decimal | None:
    """A positive amount of USD written as a decimal string (never a float)."""
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _COST.match(value):
        raise InvalidKey(f'claim {name} must be a decimal string such as "0.25"')
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern only lets decimals through
        raise InvalidKey(f"claim {name} is not a decimal") from None
    if amount <= 0:
        raise InvalidKey(f"claim {name} must be positive")
    return amount


def cnf_claim(claims: dict[str, Any]) -> str | None:
    """The ``cnf.jkt`` a key is bound to (RFC 7800 / RFC 9449 section 6.1).

    A ``cnf`` holding anything else is refused rather than ignored: a confirmation
    method we do not check would turn a key meant to be bound into a bearer key.
    """
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"} or not is_thumbprint(cnf["jkt"]):
        raise InvalidKey('claim cnf must be {"jkt": <SHA-256 JWK thumbprint>}')
    return str(cnf["jkt"])
