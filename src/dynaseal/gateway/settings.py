"""Gateway configuration (environment variables; the original names are honoured)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    AnyHttpUrl,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dynaseal.core.settings import ConfigError, NumberList, ServiceSettings, TextList
from dynaseal.gateway.admission.concurrency import CONCURRENCY_NAMES
from dynaseal.gateway.admission.rate_limits import LIMIT_NAMES
from dynaseal.gateway.admission.upstream_fields import LENGTH_FIELDS
from dynaseal.gateway.callbacks.retry import DEFAULT_RETRY_SCHEDULE
from dynaseal.gateway.routing.config import load_routing_file
from dynaseal.keys import DEFAULT_AUDIENCE


class GatewaySettings(ServiceSettings):
    database_url: str = "sqlite+aiosqlite:///./dynaseal-gateway.db"
    #: The upstream OpenAI-compatible server; unset means the built-in offline responder.
    #: Credentials in it (``http://user:password@proxy/v1``) are sent as basic auth.
    openai_base_url: AnyHttpUrl | None = None
    openai_api_key: SecretStr | None = None
    #: Model routing: a TOML file mapping public model names to upstream deployments
    #: (:mod:`dynaseal.gateway.routing.config`); instead of OPENAI_BASE_URL.
    routing_file: Path | None = None
    #: The ``aud`` dynamic keys in our own format must carry.
    gateway_audience: str = DEFAULT_AUDIENCE
    #: The gateway's base URL as devices address it, when a reverse proxy stands in front
    #: (``https://llm.example.com``, with the path prefix the proxy strips, if any): DPoP
    #: proofs name it. Unset: the request's own scheme, ``Host`` and path.
    public_url: AnyHttpUrl | None = None
    #: Clock skew tolerated on ``exp`` / ``nbf`` / ``iat`` of dynamic keys.
    key_leeway_seconds: float = 30.0
    #: Longest lifetime (``exp - iat``) accepted for keys in our own format.
    key_max_lifetime_seconds: PositiveInt = 7 * 24 * 3600
    #: How long a tenant's key records are cached; bounds how late a revocation bites.
    key_cache_seconds: PositiveFloat = 0.5
    #: How long the upstream may stay silent; also how long a request may wait for a
    #: free upstream connection.
    upstream_timeout_seconds: PositiveFloat = 300.0
    #: Upstream connections (requests in flight) per process; unset: from the process's
    #: open-files limit (two per request), at most 4,096.
    upstream_max_connections: PositiveInt | None = None
    #: Length fields set to the cap on every request, for an upstream that reads a name a
    #: device may not send (``["max_tokens"]`` for one that ignores
    #: ``max_completion_tokens``, ``["n_predict"]`` for llama.cpp).
    upstream_cap_fields: TextList = Field(default_factory=list)
    #: A device that takes longer than this to accept the next piece of a stream is
    #: treated as gone: the upstream is closed and the request settled.
    client_write_timeout_seconds: PositiveFloat = 60.0
    #: Generated text kept per request for the callback's ``content``; past it the
    #: callback says ``content_truncated``.
    callback_content_max_chars: NonNegativeInt = 65_536
    callback_timeout_seconds: PositiveFloat = 10.0
    #: Delays before each callback retry; after the last one a delivery is marked failed.
    callback_retry_schedule_seconds: NumberList = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE)
    )
    #: Callback URLs on loopback (127.0.0.0/8, ::1) are refused unless allowed.
    allow_loopback_callbacks: bool = False
    #: Callback URLs on private networks (RFC 1918, 100.64.0.0/10, fc00::/7) are refused
    #: unless allowed; link-local and other special-purpose addresses always are.
    allow_private_callbacks: bool = False
    #: After a webhook secret is rotated, callbacks carry both signatures for this long.
    webhook_secret_overlap_seconds: NonNegativeFloat = 24 * 3600.0
    #: Where key budgets are reserved: ``redis`` when REDIS_URL is set; else ``memory``
    #: (fastest; one gateway process per SQLite file) or ``database`` (row locks: several
    #: processes on one database). ``auto``: redis, else memory on SQLite, else database.
    budget_store: Literal["auto", "memory", "database"] = "auto"
    #: Default rate limits per minute (0: unlimited); a tenant may set its own.
    rate_limit_key_rpm: NonNegativeInt = 0
    rate_limit_key_tpm: NonNegativeInt = 0
    rate_limit_sub_rpm: NonNegativeInt = 0
    rate_limit_sub_tpm: NonNegativeInt = 0
    rate_limit_tenant_rpm: NonNegativeInt = 0
    rate_limit_tenant_tpm: NonNegativeInt = 0
    #: Default requests in flight at once (0: unlimited); unset: 1/64 of the upstream
    #: pool per key, 1/16 per end user, 3/4 per tenant.
    rate_limit_key_concurrency: NonNegativeInt | None = None
    rate_limit_sub_concurrency: NonNegativeInt | None = None
    rate_limit_tenant_concurrency: NonNegativeInt | None = None
    #: How long settled requests gather before one transaction writes them all (group
    #: commit; each request waits for its commit, so this adds to every answer: 0 writes
    #: as soon as the previous commit ends), and callbacks before one round sends them.
    ledger_gather_seconds: float = Field(default=0.0, ge=0, le=1)
    callback_gather_seconds: float = Field(default=0.05, ge=0, le=5)
    #: A gateway process's lease: renewed three times per lease while it runs; the
    #: requests in flight of a process whose lease ran out (it died) are settled by
    #: another as ``interrupted``, charged their reservation.
    process_lease_seconds: float = Field(default=30.0, ge=0.3)
    #: Who sends the callbacks from the outbox. ``worker``: a process of its own,
    #: ``dynaseal gateway worker``, which ``dynaseal gateway`` starts beside the serving
    #: processes; ``external``: such a worker runs elsewhere (its own container, scaled on
    #: its own), the serving processes only queue; ``inline``: each serving process sends
    #: on its own event loop (tests, an app embedded in another program). ``auto``:
    #: ``worker`` under ``dynaseal gateway``, ``inline`` for an app built in-process.
    callback_delivery: Literal["auto", "inline", "worker", "external"] = "auto"
    #: How often a delivery loop looks for due callbacks it was not told about (a
    #: worker process is never told: it polls).
    callback_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    #: How long start-up waits for the database and Redis before giving up.
    startup_timeout_seconds: PositiveFloat = 60.0
    #: On SIGTERM, how long in-flight requests (streams) may take to finish.
    shutdown_timeout_seconds: PositiveFloat = 30.0
    #: How often the refusals counted in memory are added to the database (console charts).
    refusal_flush_seconds: PositiveFloat = 5.0
    #: Largest chat request body accepted.
    max_request_bytes: PositiveInt = 4 * 1024 * 1024
    #: Model prices (USD per million tokens, see dynaseal.gateway.pricing): a JSON or
    #: TOML file, and/or JSON in the variable itself (its models win over the file's).
    prices_file: Path | None = None
    model_prices: str | None = None

    @field_validator("openai_api_key")
    @classmethod
    def _one_upstream_credential(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        base_url = info.data.get("openai_base_url")
        has_credentials = base_url is not None and (base_url.username or base_url.password)
        if value is not None and value.get_secret_value() and has_credentials:
            raise ValueError(
                "OPENAI_BASE_URL carries credentials and OPENAI_API_KEY is set, but the "
                "upstream gets only one Authorization header: keep the credentials in "
                "OPENAI_BASE_URL for a proxy that wants basic auth, or use OPENAI_API_KEY alone"
            )
        return value

    @field_validator("routing_file")
    @classmethod
    def _routing_file_is_sound(cls, value: Path | None) -> Path | None:
        """Checked when the settings are read, so a bad file stops the start at once."""
        if value is not None:
            try:
                load_routing_file(value)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("ROUTING_FILE: ")) from None
        return value

    @model_validator(mode="after")
    def _one_way_to_the_upstream(self) -> Self:
        if self.routing_file is not None and self.openai_base_url is not None:
            raise ValueError(
                "ROUTING_FILE and OPENAI_BASE_URL are both set: give the upstream in the "
                'routing file (a deployment with model = "*" serves every other model)'
            )
        return self

    @field_validator("upstream_cap_fields")
    @classmethod
    def _known_length_fields(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - LENGTH_FIELDS)
        if unknown:
            known = ", ".join(sorted(LENGTH_FIELDS))
            raise ValueError(f"{', '.join(unknown)}: not a length field (one of {known})")
        return value

    def concurrency_limits(self) -> dict[str, int | None]:
        """The configured in-flight limits (None: sized from the upstream pool)."""
        return {name: getattr(self, f"rate_limit_{name}") for name in CONCURRENCY_NAMES}

    def rate_limits(self, tenant_limits: Mapping[str, int]) -> dict[str, int]:
        """The gateway's defaults with the tenant's own limits on top."""
        limits = {name: getattr(self, f"rate_limit_{name}") for name in LIMIT_NAMES}
        limits.update({k: v for k, v in tenant_limits.items() if k in LIMIT_NAMES})
        return limits
