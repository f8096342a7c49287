"""Which budgets a key has: its own claims, else its tenant's defaults.

``max_tokens`` is always the key's own (the claim is required). ``max_total_tokens`` and
``max_cost`` are optional claims; a key without one gets the tenant's default for it
(``PATCH /v1/user/me {"key_defaults": ...}``), if any, as of the request being judged:
a default set later caps keys already in use too, against what they already used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dynaseal.core.money import cap_units, usd
from dynaseal.gateway.budget.rules import Budgets
from dynaseal.keys import KeyGrant


@dataclass(frozen=True, slots=True)
class KeyDefaults:
    """A tenant's caps for keys that carry none of their own."""

    max_total_tokens: int | None = None
    max_cost: Decimal | None = None

    @classmethod
    def stored(cls, value: Mapping[str, Any] | None) -> KeyDefaults:
        """From the tenant's column (validated when it was written)."""
        value = value or {}
        total, cost = value.get("max_total_tokens"), value.get("max_cost")
        return cls(
            total if isinstance(total, int) else None,
            Decimal(cost) if isinstance(cost, str) else None,
        )

    def to_json(self) -> dict[str, Any]:
        cost = None if self.max_cost is None else usd(cap_units(self.max_cost))
        return {"max_total_tokens": self.max_total_tokens, "max_cost": cost}


def budgets_of(grant: KeyGrant, defaults: KeyDefaults) -> Budgets:
    total = grant.max_total_tokens
    if total is None:
        total = defaults.max_total_tokens
    cost = grant.max_cost if grant.max_cost is not None else defaults.max_cost
    return Budgets(grant.max_tokens, total, None if cost is None else cap_units(cost))


def chain_budgets(grant: KeyGrant, defaults: KeyDefaults) -> list[Budgets]:
    """The budgets of every key a request with ``grant`` is charged to, root first."""
    return [budgets_of(key, defaults) for key in grant.chain]
