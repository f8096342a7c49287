"""The backend's settings: the tenant credentials it signs keys with and the default policy."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)
from standardwebhooks.webhooks import Webhook

from dynaseal.core.money import UsdIn
from dynaseal.core.settings import ServiceSettings, TextList
from dynaseal.keys import DEFAULT_AUDIENCE


class BackendSettings(ServiceSettings):
    """Environment variables are the upper-case field names (``LLM_KEY``, ``GATEWAY_URL`` ...)."""

    database_url: str = "sqlite+aiosqlite:///./dynaseal-backend.db"
    #: The tenant's API key secret on the gateway: what dynamic keys are signed with.
    llm_key: SecretStr | None = None
    #: The tenant's id on the gateway, written into every key as ``api-key`` / ``iss``.
    llm_user_id: str | None = None
    #: ``HS256`` (LLM_KEY is the shared secret) or ``EdDSA`` / ``ES256`` (LLM_KEY is the PEM
    #: private key whose public half is registered with the gateway).
    llm_key_algorithm: Literal["HS256", "EdDSA", "ES256"] = "HS256"
    #: ``kid`` header of minted keys; without one the gateway tries all the tenant's HS keys.
    llm_key_id: str | None = None
    #: The tenant's webhook secret (``whsec_...``) that the gateway signs callbacks with.
    #: Unset: unsigned callbacks are accepted (as the original gateway sent them).
    webhook_secret: SecretStr | None = None
    gateway_url: str = "http://127.0.0.1:8000"
    gateway_audience: str = DEFAULT_AUDIENCE
    # The policy of users who have none of their own.
    default_models: TextList = ["deepseek-chat"]
    #: A key's ``max_tokens``: the tokens it may have generated, over all its requests.
    #: Sized for a session (issue 10): 20 turns of ~300-word answers fit one key, where
    #: the old 1,000 had a device mint a new key every second turn. A leaked key still
    #: buys little, for half an hour at most.
    key_budget_tokens: PositiveInt = 16_000
    #: A key's ``max_total_tokens`` (prompt + generated) and ``max_cost`` (USD, a decimal
    #: string, at the gateway's prices); 0 means the key carries none.
    key_total_tokens: NonNegativeInt = 0
    key_max_cost: UsdIn = Decimal(0)
    key_lifetime_seconds: PositiveInt = 1800
    #: Generated tokens a user may use per UTC day; 0 means unlimited. The unspent budget
    #: of the user's live keys counts as used, so keys minted in advance cannot outrun it.
    user_daily_token_quota: NonNegativeInt = 0
    #: USD a user may spend per UTC day, prompts included (keys then carry ``max_cost``,
    #: so the gateway needs a price for the user's models); 0 means unlimited.
    user_daily_cost_quota: UsdIn = Decimal(0)
    #: Mint only device-bound keys (``dpop_jkt`` or a DPoP proof with every key request);
    #: a user's own policy may say otherwise.
    require_bound_keys: bool = False
    #: Largest usage callback accepted (one carries at most the generated text the gateway
    #: keeps, plus the request's messages when the tenant includes them).
    max_callback_bytes: PositiveInt = 8 * 1024 * 1024
    #: How long after a key expires its unspent budget stays reserved: requests admitted
    #: just before the expiry may still be running, and their callbacks on their way.
    key_settlement_grace_seconds: NonNegativeFloat = 300.0
    #: Keys one user may mint per minute; 0 means unlimited.
    keys_per_user_per_minute: NonNegativeInt = 30

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Webhook(value.get_secret_value())
            except Exception as exc:
                raise ValueError("not a Standard Webhooks secret (whsec_<base64>)") from exc
        return value

    @model_validator(mode="after")
    def _tenant_key_and_id_together(self) -> BackendSettings:
        # One without the other cannot mint a key the gateway accepts: refuse to start
        # rather than answer every /key/create with 503.
        if (self.llm_key is None) != (self.llm_user_id is None):
            given, missing = "LLM_KEY", "LLM_USER_ID"
            if self.llm_key is None:
                given, missing = missing, given
            raise ValueError(
                f"{given} is set but {missing} is not: give the tenant's signing key "
                "(LLM_KEY) and its tenant id on the gateway (LLM_USER_ID) together"
            )
        return self
