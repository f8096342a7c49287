"""The budget rules, stated once: what a request may reserve from what is left.

A key has up to three cumulative budgets (:class:`Budgets`): generated tokens
(``max_tokens``), prompt + generated tokens (``max_total_tokens``) and money
(``max_cost``, in units of 1e-10 USD), plus a use count (``max_requests``). Each budget
says how many tokens per choice the request may generate; the request is admitted when
its own cap fits every one of them (without a cap, the smallest is forwarded as its cap).

Every store applies these rules — :mod:`.database` inside a database transaction,
:mod:`.memory` without an await in between, and :mod:`.redis` in Lua (the script mirrors
:func:`decide` line for line; ``tests/test_budget_rules.py`` holds it to that).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Literal, Protocol

from dynaseal.core.errors import APIError
from dynaseal.core.money import usd
from dynaseal.gateway.errors import insufficient_quota, invalid_key
from dynaseal.keys import KeyGrant

log = logging.getLogger("dynaseal.gateway")

BudgetName = Literal["max_tokens", "max_total_tokens", "max_cost"]
#: In the order they are judged (and named in a refusal).
BUDGET_NAMES: tuple[BudgetName, ...] = ("max_tokens", "max_total_tokens", "max_cost")


@dataclass(frozen=True, slots=True)
class Amounts:
    """Generated tokens, prompt + generated tokens and money units: reserved, spent or used."""

    tokens: int = 0
    total_tokens: int = 0
    cost: int = 0

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.tokens + other.tokens,
            self.total_tokens + other.total_tokens,
            self.cost + other.cost,
        )

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.tokens - other.tokens,
            self.total_tokens - other.total_tokens,
            self.cost - other.cost,
        )


@dataclass(frozen=True, slots=True)
class Budgets:
    """A key's caps (or what is left of them); ``None``: the key has no such budget."""

    tokens: int
    total_tokens: int | None = None
    cost: int | None = None

    def less(self, amounts: Amounts) -> Budgets:
        return Budgets(
            self.tokens - amounts.tokens,
            None if self.total_tokens is None else self.total_tokens - amounts.total_tokens,
            None if self.cost is None else self.cost - amounts.cost,
        )


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request asks of a key's budgets."""

    prompt_estimate: int
    #: Money units the estimated prompt may cost (at the dearer of the input prices).
    prompt_cost: int
    #: Money units per generated token.
    output_price: int
    requested_cap: int | None  # max_tokens / max_completion_tokens, per choice
    choices: int


@dataclass(frozen=True, slots=True)
class Reservation:
    amounts: Amounts  # held back until settlement
    completion_cap: int  # max_tokens forwarded upstream (per choice)
    prompt_estimate: int
    #: What the key's budgets had free once this was held (``None``: no such budget).
    left: Budgets
    #: Requests the key may still start (``None``: no use count).
    requests_left: int | None = None


class Refusal(enum.Enum):
    REVOKED = "revoked"
    NO_REQUESTS_LEFT = "no_requests_left"
    #: One budget cannot hold the request (named by :attr:`Refused.budget`).
    SHORT = "short"


@dataclass(frozen=True, slots=True)
class Refused:
    refusal: Refusal
    budget: BudgetName | None = None
    left: int = 0  # free in that budget when judged (tokens, or money units)
    fits: int = 0  # the largest cap per choice that budget allows (< 1: none)
    held: int = 0  # of that budget, reserved by requests in progress


class KeyState(Protocol):
    """What a store holds of a key (a database row, a state in memory, a Redis hash)."""

    spent: int
    reserved: int
    total_spent: int
    total_reserved: int
    cost_spent: int
    cost_reserved: int
    requests: int
    revoked: bool


def decide(
    key: KeyState, budgets: Budgets, *, max_requests: int | None, ask: Ask
) -> Reservation | Refused:
    """A reservation, or why not."""
    if key.revoked:
        return Refused(Refusal.REVOKED)
    if max_requests is not None and key.requests >= max_requests:
        return Refused(Refusal.NO_REQUESTS_LEFT)
    n = ask.choices
    free = Budgets(
        budgets.tokens - key.spent - key.reserved,
        None
        if budgets.total_tokens is None
        else budgets.total_tokens - key.total_spent - key.total_reserved,
        None if budgets.cost is None else budgets.cost - key.cost_spent - key.cost_reserved,
    )
    # Per budget: its name, what it has free, the largest cap per choice it allows
    # (None: any) and what requests in progress hold of it.
    judged: list[tuple[BudgetName, int, int | None, int]] = [
        ("max_tokens", free.tokens, free.tokens // n, key.reserved)
    ]
    if free.total_tokens is not None:
        fits = (free.total_tokens - ask.prompt_estimate) // n
        judged.append(("max_total_tokens", free.total_tokens, fits, key.total_reserved))
    if free.cost is not None:
        room = free.cost - ask.prompt_cost
        if ask.output_price > 0:
            cost_fits: int | None = room // (n * ask.output_price)
        else:
            cost_fits = None if room >= 0 else -1
        judged.append(("max_cost", free.cost, cost_fits, key.cost_reserved))
    cap = ask.requested_cap
    for name, free_in, fits_per_choice, held in judged:
        if fits_per_choice is not None and fits_per_choice < (1 if cap is None else cap):
            return Refused(Refusal.SHORT, name, free_in, fits_per_choice, held)
    if cap is None:
        cap = min(fits for _, _, fits, _ in judged if fits is not None)
    generated = cap * n
    amounts = Amounts(
        generated,
        0 if budgets.total_tokens is None else ask.prompt_estimate + generated,
        0 if budgets.cost is None else ask.prompt_cost + generated * ask.output_price,
    )
    left = free.less(amounts)
    requests_left = None if max_requests is None else max_requests - key.requests - 1
    return Reservation(amounts, cap, ask.prompt_estimate, left, requests_left)


def hold(key: KeyState, amounts: Amounts) -> None:
    key.reserved += amounts.tokens
    key.total_reserved += amounts.total_tokens
    key.cost_reserved += amounts.cost
    key.requests += 1


def reserve_or_refuse(key: KeyState, grant: KeyGrant, budgets: Budgets, ask: Ask) -> Reservation:
    """Apply :func:`decide` to ``key`` and hold the reservation in it; a refusal is
    raised as the API error. The caller makes this atomic (row lock, no await)."""
    decision = decide(key, budgets, max_requests=grant.max_requests, ask=ask)
    if isinstance(decision, Refused):
        raise refused(grant, decision, ask)
    hold(key, decision.amounts)
    return decision


def refused(grant: KeyGrant, decision: Refused, ask: Ask) -> APIError:
    """Log a refusal (the operator's view) and build what the device sees."""
    log.info(
        "key %s refused: %s%s",
        grant.event_id,
        decision.refusal.value,
        f" ({decision.budget})" if decision.budget else "",
    )
    if decision.refusal is Refusal.REVOKED:
        return invalid_key()
    if decision.refusal is Refusal.NO_REQUESTS_LEFT:
        return insufficient_quota(
            f"This key has no requests left: all {grant.max_requests} (max_requests) were made."
        )
    return insufficient_quota(short_message(decision, ask))


def short_message(decision: Refused, ask: Ask) -> str:
    """Which budget, what it has left, what the request asked for, and what would fit."""
    n, cap = ask.choices, ask.requested_cap
    if cap is None:
        generated = f"at least {n} generated token{'s' if n > 1 else ''}"
    else:
        generated = f"up to {cap * n} generated tokens" + (
            f" ({cap} each for n={n})" if n > 1 else ""
        )
    prompt = f"an estimated {ask.prompt_estimate} prompt tokens"
    if decision.budget == "max_tokens":
        what, left = "generated tokens", f"{max(decision.left, 0)} generated tokens"
        asked = f"this request asks for {generated}"
    elif decision.budget == "max_total_tokens":
        what, left = "prompt + generated tokens", f"{max(decision.left, 0)} tokens"
        asked = f"this request needs {prompt} plus {generated}"
    else:
        what, left = "USD", f"{usd(max(decision.left, 0))} USD"
        upto = ask.prompt_cost + (cap or 1) * n * ask.output_price
        asked = f"this request may cost {usd(upto)} USD ({prompt} plus {generated})"
    if decision.left <= 0 and decision.held <= 0:
        state = f"This key's {decision.budget} budget ({what}) is spent"
    else:
        state = f"This key's {decision.budget} budget ({what}) has {left} left"
        if decision.held > 0:
            held = f"{usd(decision.held)} USD" if decision.budget == "max_cost" else decision.held
            state += f" ({held} more held by requests in progress)"
    message = f"{state}; {asked}."
    if cap is not None and decision.fits >= 1:
        message += f" max_tokens up to {decision.fits} would fit."
    return message
