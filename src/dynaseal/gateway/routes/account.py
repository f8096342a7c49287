"""Tenant login, tokens and profile (callback URL, usage totals, key defaults, prices)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator

from dynaseal.core.errors import APIError, bad_request, unauthorized
from dynaseal.core.money import Usd
from dynaseal.core.session_tokens import InvalidSessionToken
from dynaseal.gateway import tenants
from dynaseal.gateway.admission.upstream_fields import allowed_fields, valid_field_name
from dynaseal.gateway.budget.limits import KeyDefaults
from dynaseal.gateway.callbacks import outbox
from dynaseal.gateway.deps import CurrentTenant, Services, allowed_callback_url
from dynaseal.gateway.pricing import PriceError, parse_price
from dynaseal.gateway.web_origins import WebOrigin
from dynaseal.keys import InvalidKey
from dynaseal.keys.claim_values import MAX_INT_CLAIM, cost_claim
from dynaseal.storage.gateway_models import Tenant

router = APIRouter(tags=["tenant account"])

#: A batch waits at most an hour and carries at most 1,000 events (its body stays
#: well under a receiver's usual request size limit).
MAX_BATCH_SECONDS = 3600
MAX_BATCH_EVENTS = 1000

RateLimitName = Literal[
    "key_rpm",
    "key_tpm",
    "sub_rpm",
    "sub_tpm",
    "tenant_rpm",
    "tenant_tpm",
    "key_concurrency",
    "sub_concurrency",
    "tenant_concurrency",
]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"


class RefreshRequest(BaseModel):
    refresh_token: str


class KeyDefaultsIO(BaseModel):
    """Budgets for the tenant's keys that carry none of their own (null: none)."""

    max_total_tokens: int | None = Field(default=None, ge=1, le=MAX_INT_CLAIM)
    #: USD as a decimal string, written as the ``max_cost`` claim is.
    max_cost: str | None = None

    @field_validator("max_cost")
    @classmethod
    def _cost(cls, value: str | None) -> str | None:
        try:
            amount = cost_claim({"max_cost": value})
        except InvalidKey as exc:
            raise ValueError(exc.reason.replace("claim ", "")) from None
        return None if amount is None else KeyDefaults(max_cost=amount).to_json()["max_cost"]


class TenantOut(BaseModel):
    id: str
    username: str
    email: str | None
    is_admin: bool
    callback_url: str | None
    callback_include_content: bool
    callback_include_prompt: bool
    callback_batch_seconds: float
    callback_batch_max: int
    rate_limits: dict[str, int] | None
    key_defaults: KeyDefaultsIO
    #: The tenant's own prices, USD per million tokens, over the gateway's table.
    model_prices: dict[str, dict[str, str]]
    #: The request fields passed on to the upstream (the default list unless set).
    upstream_fields: list[str]
    allowed_origins: list[str] | None = None
    total_tokens: int
    total_cost: Usd  # of the requests whose model had a price
    disabled_at: datetime | None = None
    created_at: datetime

    @field_validator("key_defaults", "model_prices", mode="before")
    @classmethod
    def _none_set(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("upstream_fields", mode="before")
    @classmethod
    def _effective(cls, value: list[str] | None) -> list[str]:
        return sorted(allowed_fields(value))

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls.model_validate(tenant, from_attributes=True)


class TenantUpdate(BaseModel):
    """Only the fields given change. ``callback_url`` null or "" removes the URL;
    ``rate_limits`` null removes the tenant's own limits (the gateway's defaults apply),
    an object sets the limits it names; the same for ``key_defaults`` and
    ``model_prices``."""

    model_config = ConfigDict(extra="forbid")

    callback_url: str | None = None
    #: Whether callbacks carry the generated text / the request's messages.
    callback_include_content: bool = True
    callback_include_prompt: bool = False
    #: 0: one callback per request. Above 0: usage events are gathered for up to this
    #: many seconds, and at most ``callback_batch_max`` of them, into one ``usage.batch``.
    callback_batch_seconds: float = Field(default=0.0, ge=0, le=MAX_BATCH_SECONDS, strict=True)
    callback_batch_max: int = Field(default=100, ge=1, le=MAX_BATCH_EVENTS, strict=True)
    #: Limits over the gateway's defaults (0 = unlimited): per minute key_rpm, key_tpm,
    #: sub_rpm, sub_tpm, tenant_rpm, tenant_tpm; in flight at once key_concurrency,
    #: sub_concurrency, tenant_concurrency.
    rate_limits: dict[RateLimitName, NonNegativeInt] | None = None
    #: The web origins (``https://app.example``) the tenant's dynamic keys may be used
    #: from; null: any. Requests without an Origin (apps, servers) are not affected.
    allowed_origins: list[WebOrigin] | None = Field(default=None, max_length=100)
    #: The request fields passed on to the upstream, replacing the default list (model,
    #: messages, stream, n and the token caps always pass; length fields are capped);
    #: null restores the default.
    upstream_fields: list[str] | None = Field(default=None, max_length=200)

    @field_validator("upstream_fields")
    @classmethod
    def _field_names(cls, value: list[str] | None) -> list[str] | None:
        bad = [name for name in value or () if not valid_field_name(name)]
        if bad:
            raise ValueError(f"not a request field name: {bad[0][:64]!r}")
        return value

    #: Budgets for keys without their own ``max_total_tokens`` / ``max_cost``; the
    #: fields given are set (a null one clears it), the others kept.
    key_defaults: KeyDefaultsIO | None = None
    #: Prices over the gateway's, USD per million tokens as decimal strings:
    #: ``{model: {"input", "output"[, "cached_input"]}}``; a model set to null goes back
    #: to the gateway's price.
    model_prices: dict[str, dict[str, Any] | None] | None = Field(default=None, max_length=256)


def _prices(
    current: dict[str, Any] | None, given: dict[str, dict[str, Any] | None]
) -> dict[str, Any]:
    """The tenant's prices with ``given`` applied, each written as the gateway reads it."""
    prices = dict(current or {})
    for model, entry in given.items():
        if entry is None:
            prices.pop(model, None)
            continue
        if not model or len(model) > 256:
            raise bad_request("model names must be 1 to 256 characters.", param="model_prices")
        try:
            prices[model] = parse_price(entry, f"model_prices[{model!r}]").per_million()
        except PriceError as exc:
            raise bad_request(f"{exc}.", param="model_prices") from None
    return prices


@router.post("/user/login", response_model=TokenPair, summary="Log in as a tenant")
async def login(
    request: Request,
    services: Services,
    username: Annotated[str, Form(description="username or email", max_length=256)],
    password: Annotated[str, Form(max_length=1024)],
) -> dict[str, str]:

    async def authenticate() -> Tenant | None:
        async with services.db.sessions() as session:
            return await tenants.authenticate(session, username, password)

    tenant = await services.login_throttle.login(request, username, authenticate)
    if tenant.disabled_at is not None:
        raise APIError(403, "This tenant is disabled; ask the operator.", code="tenant_disabled")
    return services.sessions.issue_pair(tenant.id)


@router.post("/user/refresh", response_model=TokenPair, summary="Swap a refresh token")
async def refresh(services: Services, body: RefreshRequest) -> dict[str, str]:
    try:
        tenant_id = services.sessions.subject(body.refresh_token, "refresh")
    except InvalidSessionToken:
        raise unauthorized("Invalid or expired refresh token.") from None
    async with services.db.sessions() as session:
        row = await session.get(Tenant, tenant_id)
        if row is None or row.disabled_at is not None:
            raise unauthorized()
    return services.sessions.issue_pair(tenant_id)


@router.get("/user/me", response_model=TenantOut, summary="The logged-in tenant")
async def me(tenant: CurrentTenant, services: Services) -> TenantOut:
    async with services.db.sessions() as session:
        fresh = await session.get(Tenant, tenant.id)
    return TenantOut.of(fresh or tenant)


@router.patch("/user/me", response_model=TenantOut, summary="Set the callback URL and contents")
async def update_me(tenant: CurrentTenant, services: Services, body: TenantUpdate) -> TenantOut:
    given = body.model_fields_set
    if not given:
        raise bad_request(
            "Nothing to change: give at least one of " + ", ".join(TenantUpdate.model_fields) + "."
        )
    callback_url = await allowed_callback_url(services, body.callback_url)
    async with services.db.transaction() as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None
        if "callback_url" in given:
            await outbox.enable_endpoint(session, row, callback_url)
        if "callback_include_content" in given:
            row.callback_include_content = body.callback_include_content
        if "callback_include_prompt" in given:
            row.callback_include_prompt = body.callback_include_prompt
        if "callback_batch_seconds" in given:
            row.callback_batch_seconds = body.callback_batch_seconds
        if "callback_batch_max" in given:
            row.callback_batch_max = body.callback_batch_max
        if "allowed_origins" in given:
            origins = body.allowed_origins
            row.allowed_origins = None if origins is None else sorted(set(origins))
        if "rate_limits" in given:
            limits = body.rate_limits
            row.rate_limits = None if limits is None else (row.rate_limits or {}) | dict(limits)
        if "upstream_fields" in given:
            fields = body.upstream_fields
            row.upstream_fields = None if fields is None else sorted(set(fields))
        if "key_defaults" in given:
            defaults = body.key_defaults
            row.key_defaults = (
                None
                if defaults is None
                else (row.key_defaults or {})
                | defaults.model_dump(include=defaults.model_fields_set)
            )
        if "model_prices" in given:
            prices = body.model_prices
            row.model_prices = None if prices is None else _prices(row.model_prices, prices)
    services.key_ring.forget(tenant.id)  # the new settings apply at once on this process
    return TenantOut.of(row)
