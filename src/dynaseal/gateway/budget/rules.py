"""The budget rules, stated once: what a request may reserve from what is left.

Every store applies them — :mod:`.database` inside a database transaction,
:mod:`.memory` without an await in between, and :mod:`.redis` in Lua (the script mirrors
:func:`decide` line for line; ``tests/test_budget_rules.py`` holds it to that).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Protocol

from dynaseal.core.errors import APIError
from dynaseal.gateway.errors import insufficient_quota, invalid_key
from dynaseal.keys import KeyGrant

log = logging.getLogger("dynaseal.gateway")


@dataclass(frozen=True, slots=True)
class Reservation:
    amount: int  # tokens held back until settlement
    completion_cap: int  # max_tokens forwarded upstream (per choice)
    prompt_estimate: int


class Refusal(enum.Enum):
    REVOKED = "revoked"
    NO_REQUESTS_LEFT = "no_requests_left"
    SPENT = "spent"
    CAP_TOO_HIGH = "cap_too_high"


def decide(
    *,
    budget: int,
    spent: int,
    reserved: int,
    requests: int,
    revoked: bool,
    max_requests: int | None,
    prompt_estimate: int,
    requested_cap: int | None,
    choices: int,
) -> Reservation | tuple[Refusal, int]:
    """A reservation, or why not and how many tokens remain."""
    if revoked:
        return Refusal.REVOKED, 0
    if max_requests is not None and requests >= max_requests:
        return Refusal.NO_REQUESTS_LEFT, 0
    remaining = budget - spent - reserved
    per_choice = (remaining - prompt_estimate) // choices
    if requested_cap is None:
        cap = per_choice
        if cap < 1:
            return Refusal.SPENT, remaining
    else:
        cap = requested_cap
        if cap > per_choice:
            return Refusal.CAP_TOO_HIGH, remaining
    return Reservation(prompt_estimate + cap * choices, cap, prompt_estimate)


class KeyState(Protocol):
    """A key's budget as a store holds it (a database row, or a state in memory)."""

    budget: int
    spent: int
    reserved: int
    requests: int
    revoked: bool


def reserve_or_refuse(
    state: KeyState,
    grant: KeyGrant,
    *,
    prompt_estimate: int,
    requested_cap: int | None,
    choices: int,
) -> Reservation:
    """Apply :func:`decide` to ``state`` and hold the reservation in it; a refusal is
    raised as the API error. The caller makes this atomic (row lock, no await)."""
    decision = decide(
        budget=state.budget,
        spent=state.spent,
        reserved=state.reserved,
        requests=state.requests,
        revoked=state.revoked,
        max_requests=grant.max_requests,
        prompt_estimate=prompt_estimate,
        requested_cap=requested_cap,
        choices=choices,
    )
    if not isinstance(decision, Reservation):
        refusal, remaining = decision
        raise refused(grant, refusal, remaining, prompt_estimate, requested_cap, choices)
    state.reserved += decision.amount
    state.requests += 1
    return decision


def refused(
    grant: KeyGrant,
    refusal: Refusal,
    remaining: int,
    prompt_estimate: int,
    requested_cap: int | None,
    choices: int,
) -> APIError:
    """Log a refusal (the operator's view) and build what the device sees."""
    log.info("key %s refused: %s", grant.event_id, refusal.value)
    return refusal_error(
        refusal,
        remaining=remaining,
        prompt_estimate=prompt_estimate,
        requested=prompt_estimate + (requested_cap or 0) * choices,
    )


def refusal_error(
    refusal: Refusal, *, remaining: int, prompt_estimate: int, requested: int
) -> APIError:
    left = max(remaining, 0)
    if refusal is Refusal.REVOKED:
        return invalid_key()
    if refusal is Refusal.NO_REQUESTS_LEFT:
        return insufficient_quota("This key has no requests left.")
    if refusal is Refusal.SPENT:
        return insufficient_quota(
            f"This key's token budget is spent ({left} tokens left, the prompt needs about "
            f"{prompt_estimate})."
        )
    return insufficient_quota(
        f"The request may use up to {requested} tokens but this key has {left} left; "
        "lower max_tokens."
    )
