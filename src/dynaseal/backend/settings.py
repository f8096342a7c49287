"""The backend's settings: the tenant credentials it signs keys with and the default policy."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt, PositiveInt, SecretStr, field_validator
from standardwebhooks.webhooks import Webhook

from dynaseal.core.settings import ServiceSettings
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
    default_models: list[str] = ["deepseek-chat"]
    key_budget_tokens: PositiveInt = 1000
    key_lifetime_seconds: PositiveInt = 600
    #: Tokens a user may use per UTC day; 0 means unlimited.
    user_daily_token_quota: NonNegativeInt = 0
    #: Mint only device-bound keys (``dpop_jkt`` or a DPoP proof with every key request);
    #: a user's own policy may say otherwise.
    require_bound_keys: bool = False
    #: Largest usage callback accepted (one carries at most the generated text the gateway
    #: keeps, plus the request's messages when the tenant includes them).
    max_callback_bytes: PositiveInt = 8 * 1024 * 1024

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Webhook(value.get_secret_value())
            except Exception as exc:
                raise ValueError("not a Standard Webhooks secret (whsec_<base64>)") from exc
        return value
