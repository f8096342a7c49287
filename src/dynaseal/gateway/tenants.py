"""Tenant accounts and their API keys (the keys tenants sign dynamic keys with)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.core.errors import APIError, bad_request
from dynaseal.core.passwords import hash_password, verify_password
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.keys import ASYMMETRIC_ALGORITHMS, load_public_key
from dynaseal.storage.gateway_models import Tenant, TenantKey
from dynaseal.storage.types import utcnow

ADMIN_USERNAME = "admin"


def new_tenant_id() -> str:
    return secrets.token_hex(12)  # the shape of the original's ids


async def authenticate(session: AsyncSession, login: str, password: str) -> Tenant | None:
    """Find the tenant by username or email and check the password (constant time)."""
    tenant = await session.scalar(
        select(Tenant).where(or_(Tenant.username == login, Tenant.email == login))
    )
    # bcrypt takes ~0.2 s of CPU: off the event loop, so streams keep flowing meanwhile.
    ok = await asyncio.to_thread(
        verify_password, password, tenant.password_hash if tenant else None
    )
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
    include_content: bool = False,
) -> Tenant:
    """``include_content``: whether callbacks carry the generated text (the demo tenant
    keeps the original's behaviour; others opt in, since it is an end user's text)."""
    # Usernames and emails are one namespace: login takes either in the same field.
    names = [username] if email is None else [username, email]
    taken = await session.scalar(
        select(Tenant.id).where(or_(Tenant.username.in_(names), Tenant.email.in_(names))).limit(1)
    )
    if taken:
        raise _tenant_exists()
    if password_hash is None:
        if not password:
            raise bad_request("password is required.", param="password")
        password_hash = await asyncio.to_thread(hash_password, password)
    tenant = Tenant(
        id=tenant_id or new_tenant_id(),
        username=username,
        email=email,
        password_hash=password_hash,
        callback_url=callback_url,
        is_admin=is_admin,
        total_tokens=0,
        callback_include_content=include_content,
    )
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent registration took the name first
        raise _tenant_exists() from None
    return tenant


def _tenant_exists() -> APIError:
    return APIError(
        409, "A tenant with this username or email exists.", code="conflict", param="username"
    )


@dataclass(frozen=True, slots=True)
class NewApiKey:
    record: TenantKey
    secret: str | None  # HS256 only: shown to the owner once, never stored in clear


async def create_api_key(
    session: AsyncSession,
    box: SecretsBox,
    tenant_id: str,
    *,
    label: str | None = None,
    secret: str | None = None,
    kid: str | None = None,
    algorithm: str = "HS256",
    public_key_pem: str | None = None,
) -> NewApiKey:
    """An HS256 key (the gateway generates and seals the secret) or an asymmetric one
    (the tenant registers only its public key)."""
    kid = kid or f"key_{secrets.token_hex(8)}"
    record = TenantKey(kid=kid, tenant_id=tenant_id, algorithm=algorithm, label=label)
    if algorithm == "HS256":
        if public_key_pem is not None:
            raise bad_request("HS256 keys have no public key.", param="public_key")
        secret = secret or secrets.token_urlsafe(32)
        record.secret_ciphertext = box.seal(secret.encode(), kid)
    elif algorithm in ASYMMETRIC_ALGORITHMS:
        try:
            load_public_key(algorithm, public_key_pem or "")
        except ValueError as exc:
            raise bad_request(f"public_key: {exc}.", param="public_key") from None
        record.public_key_pem = public_key_pem
        secret = None
    else:
        raise bad_request("algorithm must be HS256, EdDSA or ES256.", param="algorithm")
    session.add(record)
    await session.flush()
    return NewApiKey(record, secret)


async def _own_key(session: AsyncSession, tenant_id: str, kid: str) -> TenantKey:
    record = await session.scalar(
        select(TenantKey).where(TenantKey.kid == kid, TenantKey.tenant_id == tenant_id)
    )
    if record is None:
        raise APIError(404, "No such API key.", code="not_found", param="kid")
    return record


async def list_api_keys(session: AsyncSession, tenant_id: str) -> list[TenantKey]:
    rows = await session.scalars(
        select(TenantKey).where(TenantKey.tenant_id == tenant_id).order_by(TenantKey.created_at)
    )
    return list(rows)


async def revoke_api_key(session: AsyncSession, tenant_id: str, kid: str) -> TenantKey:
    """Refuse every dynamic key signed with this key, at once."""
    record = await _own_key(session, tenant_id, kid)
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


async def retire_api_key(
    session: AsyncSession, tenant_id: str, kid: str, grace_seconds: int
) -> TenantKey:
    """Rotation: the key keeps verifying for ``grace_seconds``, then is refused."""
    record = await _own_key(session, tenant_id, kid)
    retires_at = utcnow() + timedelta(seconds=grace_seconds)
    if record.retires_at is None or record.retires_at > retires_at:
        record.retires_at = retires_at
    return record


async def ensure_admin(session: AsyncSession, password: str) -> None:
    """Create (or re-password) the admin account from ADMIN_USER_PASSWORD."""
    admin = await session.scalar(select(Tenant).where(Tenant.username == ADMIN_USERNAME))
    if admin is None:
        await create_tenant(session, username=ADMIN_USERNAME, password=password, is_admin=True)
    elif not verify_password(password, admin.password_hash):
        admin.password_hash = hash_password(password)
