"""Tenant accounts and their API keys (the keys tenants sign dynamic keys with)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.core.errors import APIError, bad_request
from dynaseal.core.passwords import hash_password, verify_password
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.storage.gateway_models import Tenant, TenantKey
from dynaseal.storage.types import utcnow

ADMIN_USERNAME = "admin"


def new_tenant_id() -> str:
    return secrets.token_hex(12)  # the shape of the original's ids


def check_callback_url(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("callback_url must be an http(s) URL.", param="callback_url")
    return url


async def authenticate(session: AsyncSession, login: str, password: str) -> Tenant | None:
    """Find the tenant by username or email and check the password (constant time)."""
    tenant = await session.scalar(
        select(Tenant).where(or_(Tenant.username == login, Tenant.email == login))
    )
    ok = verify_password(password, tenant.password_hash if tenant else None)
    return tenant if ok else None


async def create_tenant(
    session: AsyncSession,
    *,
    username: str,
    password: str | None = None,
    password_hash: str | None = None,
    email: str | None = None,
    callback_url: str | None = None,
    is_admin: bool = False,
    tenant_id: str | None = None,
) -> Tenant:
    taken = await session.scalar(
        select(Tenant.id).where(
            or_(Tenant.username == username, Tenant.email == (email or username))
        )
    )
    if taken:
        raise APIError(409, "A tenant with this username or email exists.", code="conflict")
    if password_hash is None:
        if not password:
            raise bad_request("password is required.", param="password")
        password_hash = hash_password(password)
    tenant = Tenant(
        id=tenant_id or new_tenant_id(),
        username=username,
        email=email,
        password_hash=password_hash,
        callback_url=check_callback_url(callback_url),
        is_admin=is_admin,
        total_tokens=0,
    )
    session.add(tenant)
    await session.flush()
    return tenant


@dataclass(frozen=True, slots=True)
class NewApiKey:
    record: TenantKey
    secret: str  # shown to the owner once, never stored in clear


async def create_api_key(
    session: AsyncSession,
    box: SecretsBox,
    tenant_id: str,
    *,
    label: str | None = None,
    secret: str | None = None,
    kid: str | None = None,
) -> NewApiKey:
    secret = secret or secrets.token_urlsafe(32)
    kid = kid or f"key_{secrets.token_hex(8)}"
    record = TenantKey(
        kid=kid,
        tenant_id=tenant_id,
        algorithm="HS256",
        secret_ciphertext=box.seal(secret.encode(), kid),
        label=label,
    )
    session.add(record)
    await session.flush()
    return NewApiKey(record, secret)


async def list_api_keys(session: AsyncSession, tenant_id: str) -> list[TenantKey]:
    rows = await session.scalars(
        select(TenantKey).where(TenantKey.tenant_id == tenant_id).order_by(TenantKey.created_at)
    )
    return list(rows)


async def revoke_api_key(session: AsyncSession, tenant_id: str, kid: str) -> datetime:
    record = await session.scalar(
        select(TenantKey).where(TenantKey.kid == kid, TenantKey.tenant_id == tenant_id)
    )
    if record is None:
        raise APIError(404, "No such API key.", code="not_found", param="kid")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record.revoked_at


async def ensure_admin(session: AsyncSession, password: str) -> None:
    """Create (or re-password) the admin account from ADMIN_USER_PASSWORD."""
    admin = await session.scalar(select(Tenant).where(Tenant.username == ADMIN_USERNAME))
    if admin is None:
        await create_tenant(session, username=ADMIN_USERNAME, password=password, is_admin=True)
    elif not verify_password(password, admin.password_hash):
        admin.password_hash = hash_password(password)
