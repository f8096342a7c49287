"""Tenant login, tokens and profile (callback URL, usage total)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator

from dynaseal.core.errors import APIError, bad_request, unauthorized
from dynaseal.core.session_tokens import InvalidSessionToken
from dynaseal.gateway import tenants
from dynaseal.gateway.admission.upstream_fields import allowed_fields, valid_field_name
from dynaseal.gateway.callbacks import outbox
from dynaseal.gateway.deps import CurrentTenant, Services, allowed_callback_url
from dynaseal.storage.gateway_models import Tenant

router = APIRouter(tags=["tenant account"])

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


class TenantOut(BaseModel):
    id: str
    username: str
    email: str | None
    is_admin: bool
    callback_url: str | None
    callback_include_content: bool
    callback_include_prompt: bool
    rate_limits: dict[str, int] | None
    #: The request fields passed on to the upstream (the default list unless set).
    upstream_fields: list[str]
    total_tokens: int
    disabled_at: datetime | None = None
    created_at: datetime

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
    an object sets the limits it names."""

    model_config = ConfigDict(extra="forbid")

    callback_url: str | None = None
    #: Whether callbacks carry the generated text / the request's messages.
    callback_include_content: bool = True
    callback_include_prompt: bool = False
    #: Limits over the gateway's defaults (0 = unlimited): per minute key_rpm, key_tpm,
    #: sub_rpm, sub_tpm, tenant_rpm, tenant_tpm; in flight at once key_concurrency,
    #: sub_concurrency, tenant_concurrency.
    rate_limits: dict[RateLimitName, NonNegativeInt] | None = None
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
        if "rate_limits" in given:
            limits = body.rate_limits
            row.rate_limits = None if limits is None else (row.rate_limits or {}) | dict(limits)
        if "upstream_fields" in given:
            fields = body.upstream_fields
            row.upstream_fields = None if fields is None else sorted(set(fields))
    services.key_ring.forget(tenant.id)  # the new limits and fields apply at once here
    return TenantOut.of(row)
