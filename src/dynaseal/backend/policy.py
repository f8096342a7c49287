"""What a user may put in a dynamic key: the backend defaults overridden per user."""

from __future__ import annotations

from dataclasses import dataclass

from dynaseal.backend.settings import BackendSettings
from dynaseal.core.errors import APIError
from dynaseal.storage.backend_models import User


@dataclass(frozen=True, slots=True)
class Policy:
    models: tuple[str, ...]
    key_budget_tokens: int
    key_lifetime_seconds: int
    daily_token_quota: int  # 0: unlimited
    require_bound_keys: bool = False


@dataclass(frozen=True, slots=True)
class KeyTerms:
    """The rights a key will carry once a request has been checked against the policy."""

    models: tuple[str, ...]
    max_tokens: int
    ttl_seconds: int


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
    )


def narrow(policy: Policy, model: str | None, max_tokens: int | None) -> KeyTerms:
    """A device may ask for less than its policy allows, never for more."""
    if model is not None and model not in policy.models:
        raise APIError(
            403,
            f"model {model!r} is not allowed for this user",
            code="model_not_allowed",
            param="model",
        )
    if max_tokens is not None and max_tokens > policy.key_budget_tokens:
        raise APIError(
            403,
            f"max_tokens {max_tokens} exceeds this user's budget of "
            f"{policy.key_budget_tokens} tokens per key",
            code="budget_exceeded",
            param="max_tokens",
        )
    return KeyTerms(
        models=(model,) if model is not None else policy.models,
        max_tokens=max_tokens or policy.key_budget_tokens,
        ttl_seconds=policy.key_lifetime_seconds,
    )
