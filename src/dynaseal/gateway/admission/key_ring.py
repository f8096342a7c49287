"""The tenants' active signing keys, as the verifier needs them, behind a short cache.

The cache saves a database round trip per request; its lifetime (``key_cache_seconds``,
0.5 s by default) bounds how long a revocation takes to bite on another process.
Unknown tenants are cached too, so forged tenant ids cannot hammer the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from dynaseal.gateway.admission.upstream_fields import allowed_fields
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.keys import VerificationKey, load_public_key
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import Tenant, TenantKey

log = logging.getLogger("dynaseal.gateway")


@dataclass(frozen=True, slots=True)
class _CachedKey:
    key: VerificationKey
    retires_at: float | None  # unix time; a retired key verifies until then


@dataclass(frozen=True, slots=True)
class TenantKeys:
    keys: tuple[_CachedKey, ...]
    not_before: float | None  # keys minted before this unix time are refused
    rate_limits: dict[str, int] = field(default_factory=dict)  # the tenant's own limits
    #: The request fields the tenant lets through to the upstream.
    upstream_fields: frozenset[str] = field(default_factory=lambda: allowed_fields(None))

    def active(self, now: float) -> tuple[VerificationKey, ...]:
        return tuple(c.key for c in self.keys if c.retires_at is None or c.retires_at > now)


_NO_TENANT = TenantKeys((), None)


class KeyRing:
    def __init__(self, db: Database, box: SecretsBox, cache_seconds: float) -> None:
        self._db = db
        self._box = box
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TenantKeys]] = {}

    async def keys_of(self, tenant_id: str) -> TenantKeys:
        now = time.monotonic()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        keys = await self._load(tenant_id)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[tenant_id] = (now + self._cache_seconds, keys)
        return keys

    def forget(self, tenant_id: str) -> None:
        """Drop a tenant from the cache (after its keys changed in this process)."""
        self._cache.pop(tenant_id, None)

    async def _load(self, tenant_id: str) -> TenantKeys:
        async with self._db.reads() as session:
            tenant = await session.get(Tenant, tenant_id)
            if tenant is None or tenant.disabled_at is not None:  # disabled: no key verifies
                return _NO_TENANT
            rows = await session.scalars(
                select(TenantKey).where(
                    TenantKey.tenant_id == tenant_id, TenantKey.revoked_at.is_(None)
                )
            )
            records = list(rows)
        keys = []
        for record in records:
            material = self._material(record)
            if material is not None:
                retires = record.retires_at.timestamp() if record.retires_at else None
                keys.append(
                    _CachedKey(VerificationKey(record.kid, record.algorithm, material), retires)
                )
        cutoff = tenant.keys_not_before.timestamp() if tenant.keys_not_before else None
        return TenantKeys(
            tuple(keys),
            cutoff,
            dict(tenant.rate_limits or {}),
            allowed_fields(tenant.upstream_fields),
        )

    def _material(self, record: TenantKey) -> Any:
        if record.public_key_pem is not None:
            try:
                return load_public_key(record.algorithm, record.public_key_pem)
            except ValueError:
                log.error("key %s has an unusable public key", record.kid)
                return None
        if record.secret_ciphertext is None:
            return None
        secret = self._box.open(record.secret_ciphertext, record.kid)
        if secret is None:
            log.error("key %s cannot be decrypted: was SECRET_KEY changed?", record.kid)
        return secret
