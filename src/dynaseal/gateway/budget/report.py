"""What a key has left, as its holder sees it: the ``x-dynaseal-budget-remaining-*``
headers of chat completions and the budgets of ``GET /v1/key``.

The headers cost nothing: the store computed what was left when it reserved. A
non-streaming answer is sent once settled, so its headers give what remains after the
request's real usage. A stream's headers leave before the answer: they give what
remains whatever the request generates (its whole reservation counted as used).
Money is a decimal string of USD; a budget the key does not have has no header.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynaseal.core.money import usd
from dynaseal.gateway.budget.rules import Amounts, Budgets, Reservation

HEADER_PREFIX = "x-dynaseal-budget-remaining-"


def remaining_headers(reservation: Reservation, used: Amounts | None) -> dict[str, str]:
    given_back = Amounts() if used is None else reservation.amounts - used
    left = reservation.left
    headers = {HEADER_PREFIX + "tokens": str(max(0, left.tokens + given_back.tokens))}
    if left.total_tokens is not None:
        total = left.total_tokens + given_back.total_tokens
        headers[HEADER_PREFIX + "total-tokens"] = str(max(0, total))
    if left.cost is not None:
        headers[HEADER_PREFIX + "cost"] = usd(max(0, left.cost + given_back.cost))
    if reservation.requests_left is not None:
        headers[HEADER_PREFIX + "requests"] = str(max(0, reservation.requests_left))
    return headers


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """One budget of a key: its cap, what finished requests used, what requests in
    progress hold, and what remains for new ones (money in units)."""

    limit: int
    used: int
    reserved: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used - self.reserved)


def figures(budgets: Budgets, spent: Amounts, reserved: Amounts) -> dict[str, BudgetFigures]:
    """The key's budgets by claim name; those it does not have are left out."""
    shown = {"max_tokens": BudgetFigures(budgets.tokens, spent.tokens, reserved.tokens)}
    if budgets.total_tokens is not None:
        shown["max_total_tokens"] = BudgetFigures(
            budgets.total_tokens, spent.total_tokens, reserved.total_tokens
        )
    if budgets.cost is not None:
        shown["max_cost"] = BudgetFigures(budgets.cost, spent.cost, reserved.cost)
    return shown
