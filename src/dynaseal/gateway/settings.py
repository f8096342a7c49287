"""Gateway configuration (environment variables; the original names are honoured)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, NonNegativeFloat, PositiveFloat, PositiveInt, SecretStr

from dynaseal.core.settings import ServiceSettings
from dynaseal.gateway.delivery import DEFAULT_RETRY_SCHEDULE
from dynaseal.keys import DEFAULT_AUDIENCE


class GatewaySettings(ServiceSettings):
    database_url: str = "sqlite+aiosqlite:///./dynaseal-gateway.db"
    #: The upstream OpenAI-compatible server; unset means the built-in offline responder.
    openai_base_url: AnyHttpUrl | None = None
    openai_api_key: SecretStr | None = None
    #: The ``aud`` dynamic keys in our own format must carry.
    gateway_audience: str = DEFAULT_AUDIENCE
    #: Clock skew tolerated on ``exp`` / ``nbf`` / ``iat`` of dynamic keys.
    key_leeway_seconds: float = 30.0
    #: Longest lifetime (``exp - iat``) accepted for keys in our own format.
    key_max_lifetime_seconds: PositiveInt = 7 * 24 * 3600
    #: How long a tenant's key records are cached; bounds how late a revocation bites.
    key_cache_seconds: float = 1.0
    upstream_timeout_seconds: PositiveFloat = 300.0
    upstream_max_connections: PositiveInt = 256
    callback_timeout_seconds: PositiveFloat = 10.0
    #: Delays before each callback retry; after the last one a delivery is marked failed.
    callback_retry_schedule_seconds: list[PositiveFloat] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE)
    )
    #: Callback URLs on loopback (127.0.0.0/8, ::1) are refused unless allowed.
    allow_loopback_callbacks: bool = False
    #: Callback URLs on private / link-local networks are refused unless allowed.
    allow_private_callbacks: bool = False
    #: Failed tenant logins allowed per account and per client address in the window.
    login_failures_per_account: PositiveInt = 5
    login_failures_per_address: PositiveInt = 30
    login_failure_window_seconds: PositiveFloat = 300.0
    #: After a webhook secret is rotated, callbacks carry both signatures for this long.
    webhook_secret_overlap_seconds: NonNegativeFloat = 24 * 3600.0
    #: Largest chat request body accepted.
    max_request_bytes: PositiveInt = 4 * 1024 * 1024
