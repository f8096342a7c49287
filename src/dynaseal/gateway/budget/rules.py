"""The budget rules, stated once: what a request may reserve from what is left.

A key has up to three cumulative budgets (:class:`Budgets`): generated tokens
(``max_tokens``), prompt + generated tokens (``max_total_tokens``) and money
(``max_cost``, in units of 1e-10 USD), plus a use count (``max_requests``). Each budget
says how many tokens per choice the request may generate; the request is admitted when
its own cap fits every one of them (without a cap, the smallest is forwarded as its cap).

A child key's request is judged by its whole chain at once (:func:`decide_chain`): the
child and every ancestor must hold it, and all of them do.

Every store applies these rules — :mod:`.database` inside a database transaction,
:mod:`.memory` without an await in between, and :mod:`.redis` in Lua (the script mirrors
:func:`decide_chain` line for line; ``tests/test_budget_rules.py`` holds it to that).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
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
    #: Which key of a chain refused (0: the root, or the only key).
    index: int = 0


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
    """A reservation for one key, or why not."""
    return decide_chain([(key, budgets, max_requests)], ask)


def decide_chain(
    chain: Sequence[tuple[KeyState, Budgets, int | None]], ask: Ask
) -> Reservation | Refused:
    """A reservation held by every key of a chain (a child key and its ancestors, root
    first; one key for a root key), or the first key's refusal.

    The cap is the smallest any key allows, and every key holds the same amounts (money
    and total tokens as soon as one key has such a budget), so a child can never spend
    more than any ancestor has left. With one key this is the rule of a single key.
    """
    n, cap = ask.choices, ask.requested_cap
    need = 1 if cap is None else cap
    smallest: int | None = None
    any_total = any_cost = False
    frees: list[Budgets] = []
    requests_left: int | None = None
    for index, (key, budgets, max_requests) in enumerate(chain):
        if key.revoked:
            return Refused(Refusal.REVOKED, index=index)
        if max_requests is not None and key.requests >= max_requests:
            return Refused(Refusal.NO_REQUESTS_LEFT, index=index)
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
            any_total = True
            fits = (free.total_tokens - ask.prompt_estimate) // n
            judged.append(("max_total_tokens", free.total_tokens, fits, key.total_reserved))
        if free.cost is not None:
            any_cost = True
            room = free.cost - ask.prompt_cost
            if ask.output_price > 0:
                cost_fits: int | None = room // (n * ask.output_price)
            else:
                cost_fits = None if room >= 0 else -1
            judged.append(("max_cost", free.cost, cost_fits, key.cost_reserved))
        for name, free_in, fits_per_choice, held in judged:
            if fits_per_choice is not None and fits_per_choice < need:
                return Refused(Refusal.SHORT, name, free_in, fits_per_choice, held, index)
            if fits_per_choice is not None and (smallest is None or fits_per_choice < smallest):
                smallest = fits_per_choice
        frees.append(free)
        if max_requests is not None:
            after = max_requests - key.requests - 1
            requests_left = after if requests_left is None else min(requests_left, after)
    if cap is None:
        assert smallest is not None  # max_tokens is always judged
        cap = smallest
    generated = cap * n
    amounts = Amounts(
        generated,
        ask.prompt_estimate + generated if any_total else 0,
        ask.prompt_cost + generated * ask.output_price if any_cost else 0,
    )
    lefts = [free.less(amounts) for free in frees]
    left = Budgets(
        min(one.tokens for one in lefts),
        _least(one.total_tokens for one in lefts),
        _least(one.cost for one in lefts),
    )
    return Reservation(amounts, cap, ask.prompt_estimate, left, requests_left)


def _least(values: Iterable[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def hold(key: KeyState, amounts: Amounts) -> None:
    key.reserved += amounts.tokens
    key.total_reserved += amounts.total_tokens
    key.cost_reserved += amounts.cost
    key.requests += 1


def reserve_or_refuse(
    keys: Sequence[KeyState], grant: KeyGrant, budgets: Sequence[Budgets], ask: Ask
) -> Reservation:
    """Apply :func:`decide_chain` to the states of ``grant.chain`` (``keys``, with their
    ``budgets``) and hold the reservation in each; a refusal is raised as the API error.
    The caller makes this atomic (row locks, no await)."""
    chain = grant.chain
    decision = decide_chain(
        [(key, kb, g.max_requests) for key, kb, g in zip(keys, budgets, chain, strict=True)], ask
    )
    if isinstance(decision, Refused):
        raise refused(grant, decision, ask)
    for key in keys:
        hold(key, decision.amounts)
    return decision


def refused(grant: KeyGrant, decision: Refused, ask: Ask) -> APIError:
    """Log a refusal (the operator's view) and build what the device sees; ``grant`` is
    the presented key, ``decision.index`` says which key of its chain refused."""
    chain = grant.chain
    refuser = chain[min(decision.index, len(chain) - 1)]
    log.info(
        "key %s refused: %s%s%s",
        grant.event_id,
        decision.refusal.value,
        f" ({decision.budget})" if decision.budget else "",
        f" by its ancestor {refuser.event_id}" if refuser is not grant else "",
    )
    if decision.refusal is Refusal.REVOKED:
        return invalid_key()
    whose = "This key's" if refuser is grant else "Its parent key's"
    if decision.refusal is Refusal.NO_REQUESTS_LEFT:
        return insufficient_quota(
            f"{whose} requests are used up: all {refuser.max_requests} (max_requests) were made."
            if refuser is not grant
            else f"This key has no requests left: all {grant.max_requests} (max_requests) "
            "were made."
        )
    message = short_message(decision, ask)
    if refuser is not grant:
        message = message.replace("This key's", whose, 1)
    return insufficient_quota(message)


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
