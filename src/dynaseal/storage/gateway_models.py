"""The gateway's tables: tenants, their keys, key budgets, the usage ledger, the requests
in flight and the processes serving them, the outbox and its delivery attempts, refusal
counts and console logins."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dynaseal.storage.console_sessions import ConsoleSessionColumns
from dynaseal.storage.types import (
    NAMING_CONVENTION,
    TYPE_ANNOTATION_MAP,
    Money,
    ServerSecretColumns,
    UTCDateTime,
    utcnow,
)


class GatewayBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = TYPE_ANNOTATION_MAP


class Tenant(GatewayBase):
    """A business backend registered with the gateway (or the admin account)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(256), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    is_admin: Mapped[bool] = mapped_column(default=False)
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    total_tokens: Mapped[int] = mapped_column(default=0)
    #: What the tenant's requests cost, in USD (requests of unpriced models count 0).
    total_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    #: Budgets for keys that carry none of their own: ``{"max_total_tokens": int,
    #: "max_cost": "<USD>"}`` (see :mod:`dynaseal.gateway.budget.limits`).
    key_defaults: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The tenant's own model prices over the gateway's table (see
    #: :mod:`dynaseal.gateway.pricing`): ``{model: {"input", "cached_input", "output"}}``.
    model_prices: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Signs the usage callbacks (sealed by the secrets box); the previous one is still
    #: sent alongside until ``previous_webhook_secret_until`` so receivers can rotate.
    webhook_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_webhook_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_webhook_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Off for tenants created since issue 10 (the demo tenant keeps it on): usage
    #: reports carry no end user's text unless the tenant asks for it.
    callback_include_content: Mapped[bool] = mapped_column(default=False)
    callback_include_prompt: Mapped[bool] = mapped_column(default=False)
    #: 0: one callback per request. Above 0: the tenant's usage events are gathered for
    #: up to this many seconds (at most ``callback_batch_max``) into one ``usage.batch``.
    callback_batch_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    callback_batch_max: Mapped[int] = mapped_column(default=100, server_default="100")
    #: Set when the endpoint answered 410 Gone: callbacks wait (status "disabled") until
    #: the tenant sets its callback URL again.
    callback_disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The tenant's own rate limits per minute (key_rpm, key_tpm, sub_rpm ...), over the
    #: gateway's defaults.
    rate_limits: Mapped[dict[str, int] | None] = mapped_column(JSON)
    #: The request fields this tenant lets through to the upstream (unset: the default
    #: list of :mod:`dynaseal.gateway.admission.upstream_fields`).
    upstream_fields: Mapped[list[str] | None] = mapped_column(JSON)
    #: The web origins (``https://app.example``) its dynamic keys work from; None: any.
    #: Checked on the ``Origin`` of each device request (browser pages send one).
    allowed_origins: Mapped[list[str] | None] = mapped_column(JSON)
    #: Keys this tenant minted before this time are refused (revoke everything issued).
    keys_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set by the admin: the tenant cannot log in and its dynamic keys are refused until
    #: it is enabled again (its data and pending callbacks stay).
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TenantKey(GatewayBase):
    """A key a tenant signs dynamic keys with. HS secrets are stored encrypted."""

    __tablename__ = "tenant_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A retired key keeps verifying until then (rotation grace period).
    retires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KeyBudget(GatewayBase):
    """What one dynamic key (one tenant + event id) has spent of its budgets, and what
    requests in progress hold: generated tokens (``spent``, ``reserved``), prompt +
    generated tokens (``total_*``) and money (``cost_*``, in units of 1e-10 USD).

    The budgets themselves come from the key and its tenant at each request
    (:mod:`dynaseal.gateway.budget.limits`); ``budget`` keeps the key's ``max_tokens``.
    Admission reserves, settlement books (:mod:`dynaseal.gateway.budget.rules`).
    """

    __tablename__ = "key_budgets"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    budget: Mapped[int]
    reserved: Mapped[int] = mapped_column(default=0)
    spent: Mapped[int] = mapped_column(default=0)
    total_reserved: Mapped[int] = mapped_column(default=0, server_default="0")
    total_spent: Mapped[int] = mapped_column(default=0, server_default="0")
    cost_reserved: Mapped[int] = mapped_column(default=0, server_default="0")
    cost_spent: Mapped[int] = mapped_column(default=0, server_default="0")
    requests: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Set when the tenant revokes this event id: every key carrying it is refused.
    revoked: Mapped[bool] = mapped_column(default=False)


class UsageRecord(GatewayBase):
    """One admitted request and what it used: the ledger tenant totals derive from."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_tenant_event", "tenant_id", "event_id"),
        # The console's charts, ledger pages and CSV export: one tenant, a time range.
        Index("ix_usage_tenant_ended", "tenant_id", "ended_at"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(256))
    sub: Mapped[str | None] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(256))
    stream: Mapped[bool]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    total_tokens: Mapped[int]
    #: USD; ``None`` when the model has no price.
    cost: Mapped[Decimal | None] = mapped_column(Money)
    usage_source: Mapped[str] = mapped_column(String(16))  # "upstream" or "estimated"
    status: Mapped[str] = mapped_column(String(32))
    #: Completion tokens the upstream generated past the cap it was sent (at least this
    #: many; booked like the rest): an upstream that ignores the length fields.
    overshoot_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    latency_ms: Mapped[int]
    time_to_first_token_ms: Mapped[int | None]
    #: The OpenAI endpoint (chat, responses, embeddings, completions).
    endpoint: Mapped[str] = mapped_column(String(16), default="chat")
    #: Each upstream deployment tried, in order: ``[{"deployment", "status",
    #: "latency_ms"}]`` (status: the HTTP status, or connect_error / timeout).
    attempts: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)


class GatewayProcess(GatewayBase):
    """A live gateway process: its lease, renewed while it runs. The requests in flight
    of a process whose lease ran out are settled by another (it died)."""

    __tablename__ = "gateway_processes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RequestInFlight(GatewayBase):
    """An admitted request the upstream is working on (an intent): written while it
    runs, removed in the transaction that writes its ledger row. What is left of a dead
    process is settled as ``interrupted`` from what is here."""

    __tablename__ = "requests_in_flight"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The :class:`GatewayProcess` serving it.
    owner: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(256))
    sub: Mapped[str | None] = mapped_column(String(256))
    #: The key's ``metadata``, echoed in the callback.
    key_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The key's ``max_tokens`` and expiry, for its budget row.
    key_max_tokens: Mapped[int]
    key_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: A child key's ancestors, root first (event id, max_tokens, expiry): an interrupted
    #: request is charged to each of them too. None for a root key.
    key_ancestors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(256))
    endpoint: Mapped[str] = mapped_column(String(16))
    stream: Mapped[bool]
    #: The reservation: generated tokens, prompt + generated tokens, money units.
    reserved_tokens: Mapped[int]
    reserved_total_tokens: Mapped[int]
    reserved_cost: Mapped[int]
    completion_cap: Mapped[int]
    prompt_estimate: Mapped[int]
    #: What the reservation costs at the model's price (money units); None: unpriced.
    cost_estimate: Mapped[int | None]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CallbackDelivery(GatewayBase):
    """A usage callback in the outbox: written with the ledger row, sent until 2xx."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (Index("ix_delivery_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # webhook-id
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[str] = mapped_column(Text)
    #: pending, delivered, failed, disabled; or batched: sent inside the ``usage.batch``
    #: delivery ``batch_id``, whose status says how that went.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: A batch's row: how many usage events its payload carries (None: one, unbatched).
    events: Mapped[int | None] = mapped_column()
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CallbackAttempt(GatewayBase):
    """One try at sending a delivery, kept so a tenant can see why its endpoint fails."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("callback_deliveries.id"), index=True)
    attempt: Mapped[int]  # 1 for the first try (counting restarts after a re-send)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    url: Mapped[str] = mapped_column(String(2048))
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]


class RefusalCount(GatewayBase):
    """Requests refused before admission, per tenant, minute and reason. Counted in
    memory and added here in batches (:mod:`dynaseal.gateway.refusals`); refusals of
    keys naming no known tenant are filed under ``UNKNOWN_TENANT``, for the operator."""

    __tablename__ = "refusal_counts"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int]


#: The ``tenant_id`` of refusals whose key names no tenant of this gateway (forged or
#: garbage keys): not a possible tenant id (those are letters, digits and ``_.:-``).
UNKNOWN_TENANT = "(unknown)"


class ConsoleSession(ConsoleSessionColumns, GatewayBase):
    """A tenant (or the admin) logged in to the web console."""

    __tablename__ = "tenant_console_sessions"


class GatewaySecret(ServerSecretColumns, GatewayBase):
    """The generated SECRET_KEY when none is configured (signs tenant logins, seals secrets)."""

    __tablename__ = "gateway_secrets"
