"""The tenants' active signing keys, as the verifier needs them, behind a short cache.

The cache saves a database round trip per request; its lifetime (``key_cache_seconds``,
1 s by default) bounds how long a revoked key can still verify on another process.
Unknown tenants are cached too, so forged tenant ids cannot hammer the database.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.keys import VerificationKey
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import TenantKey

log = logging.getLogger("dynaseal.gateway")


class KeyRing:
    def __init__(self, db: Database, box: SecretsBox, cache_seconds: float) -> None:
        self._db = db
        self._box = box
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, tuple[VerificationKey, ...]]] = {}

    async def keys_of(self, tenant_id: str) -> tuple[VerificationKey, ...]:
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
        """Drop a tenant from the cache (after a key is created or revoked here)."""
        self._cache.pop(tenant_id, None)

    async def _load(self, tenant_id: str) -> tuple[VerificationKey, ...]:
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(TenantKey).where(
                    TenantKey.tenant_id == tenant_id, TenantKey.revoked_at.is_(None)
                )
            )
            records = list(rows)
        keys = []
        for record in records:
            key = self._material(record)
            if key is not None:
                keys.append(VerificationKey(record.kid, record.algorithm, key))
        return tuple(keys)

    def _material(self, record: TenantKey) -> bytes | None:
        if record.secret_ciphertext is None:
            return None
        secret = self._box.open(record.secret_ciphertext, record.kid)
        if secret is None:
            log.error("key %s cannot be decrypted: was SECRET_KEY changed?", record.kid)
        return secret
