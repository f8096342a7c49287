"""What a user may put in a dynamic key: the backend defaults overridden per user."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from dynaseal.backend.settings import BackendSettings
from dynaseal.core.errors import APIError
from dynaseal.storage.backend_models import User


@dataclass(frozen=True, slots=True)
class Policy:
    models: tuple[str, ...]
    key_budget_tokens: int  # a key's max_tokens (generated tokens)
    key_lifetime_seconds: int
    daily_token_quota: int  # generated tokens; 0: unlimited
    require_bound_keys: bool = False
    key_total_tokens: int | None = None  # a key's max_total_tokens; None: none
    key_max_cost: Decimal | None = None  # a key's max_cost (USD); None: none
    daily_cost_quota: Decimal = Decimal(0)  # USD; 0: unlimited


@dataclass(frozen=True, slots=True)
class KeyTerms:
    """The rights a key will carry once a request has been checked against the policy."""

    models: tuple[str, ...]
    max_tokens: int
    ttl_seconds: int
    max_total_tokens: int | None = None
    max_cost: Decimal | None = None


def policy_for(user: User, settings: BackendSettings) -> Policy:
    return Policy(
        models=tuple(user.allowed_models or settings.default_models),
        key_budget_tokens=user.key_budget_tokens or settings.key_budget_tokens,
        key_lifetime_seconds=user.key_lifetime_seconds or settings.key_lifetime_seconds,
        daily_token_quota=(
            settings.user_daily_token_quota
            if user.daily_token_quota is None
            else user.daily_token_quota
        ),
        require_bound_keys=(
            settings.require_bound_keys
            if user.require_bound_keys is None
            else user.require_bound_keys
        ),
        key_total_tokens=user.key_total_tokens or settings.key_total_tokens or None,
        key_max_cost=user.key_max_cost or settings.key_max_cost or None,
        daily_cost_quota=(
            settings.user_daily_cost_quota
            if user.daily_cost_quota is None
            else user.daily_cost_quota
        ),
    )


def narrow(
    policy: Policy,
    model: str | None,
    max_tokens: int | None,
    *,
    max_total_tokens: int | None = None,
    max_cost: Decimal | None = None,
) -> KeyTerms:
    """A device may ask for less than its policy allows, never for more."""
    if model is not None and model not in policy.models:
        raise APIError(
            403,
            f"model {model!r} is not allowed for this user",
            code="model_not_allowed",
            param="model",
        )
    return KeyTerms(
        models=(model,) if model is not None else policy.models,
        max_tokens=_at_most(max_tokens, policy.key_budget_tokens, "max_tokens", "tokens")
        or policy.key_budget_tokens,
        ttl_seconds=policy.key_lifetime_seconds,
        max_total_tokens=_at_most(
            max_total_tokens, policy.key_total_tokens, "max_total_tokens", "tokens"
        ),
        max_cost=_at_most(max_cost, policy.key_max_cost, "max_cost", "USD"),
    )


N = TypeVar("N", int, Decimal)


def _at_most(asked: N | None, allowed: N | None, name: str, unit: str) -> N | None:
    """What a key gets of one budget: what the device asked for, if within the policy."""
    if asked is None:
        return allowed
    if allowed is not None and asked > allowed:
        raise APIError(
            403,
            f"{name} {asked} exceeds this user's budget of {allowed} {unit} per key",
            code="budget_exceeded",
            param=name,
        )
    return asked
