"""The tenants' active signing keys, as the verifier needs them, behind a short cache.

The cache saves a database round trip per request; its lifetime (``key_cache_seconds``,
0.5 s by default) bounds how long a revocation takes to bite on another process.
Unknown tenants are cached too, so forged tenant ids cannot hammer the database. A
reload that finds what was cached keeps the cached object, so the grants verified
against it stay valid (the gatekeeper compares by identity) instead of every key's
signature being checked again twice a second; concurrent requests share one reload.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from dynaseal.gateway.budget.limits import KeyDefaults
from dynaseal.gateway.pricing import Price, PriceError, parse_prices
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
    #: The web origins the tenant's keys work from (None: any; see gateway.device_cors).
    allowed_origins: frozenset[str] | None = None
    #: The request fields the tenant lets through to the upstream (None: each endpoint's
    #: default list; see :meth:`dynaseal.gateway.endpoints.base.Endpoint.allowed`).
    upstream_fields: frozenset[str] | None = None
    #: Budgets for keys that carry none of their own.
    key_defaults: KeyDefaults = field(default_factory=KeyDefaults)
    prices: dict[str, Price] = field(default_factory=dict)  # over the gateway's table

    def active(self, now: float) -> tuple[VerificationKey, ...]:
        return tuple(c.key for c in self.keys if c.retires_at is None or c.retires_at > now)


_NO_TENANT = TenantKeys((), None)


def _same_key(old: _CachedKey, new: _CachedKey) -> bool:
    a, b = old.key, new.key
    if (a.kid, a.algorithm, old.retires_at) != (b.kid, b.algorithm, new.retires_at):
        return False
    if isinstance(a.key, bytes | str) and isinstance(b.key, bytes | str):
        return hmac.compare_digest(_raw(a.key), _raw(b.key))  # secrets: constant time
    return bool(a.key == b.key)  # public keys


def _raw(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _unchanged(old: TenantKeys, new: TenantKeys) -> bool:
    """Whether a reload found exactly what was cached (keys, cut-off and settings)."""
    if len(old.keys) != len(new.keys) or not all(map(_same_key, old.keys, new.keys)):
        return False
    settings = ("not_before", "rate_limits", "allowed_origins", "upstream_fields")
    return all(getattr(old, name) == getattr(new, name) for name in settings) and (
        old.key_defaults == new.key_defaults and old.prices == new.prices
    )


class KeyRing:
    def __init__(self, db: Database, box: SecretsBox, cache_seconds: float) -> None:
        self._db = db
        self._box = box
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TenantKeys]] = {}
        self._loading: dict[str, asyncio.Task[TenantKeys]] = {}

    async def keys_of(self, tenant_id: str) -> TenantKeys:
        now = time.monotonic()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        loading = self._loading.get(tenant_id)
        if loading is None:
            loading = asyncio.ensure_future(self._reload(tenant_id, cached))
            self._loading[tenant_id] = loading
            loading.add_done_callback(lambda done: self._done_loading(tenant_id, done))
        # Shielded: a request that goes away does not cancel the others' reload.
        return await asyncio.shield(loading)

    def _done_loading(self, tenant_id: str, done: asyncio.Task[TenantKeys]) -> None:
        if self._loading.get(tenant_id) is done:
            del self._loading[tenant_id]

    async def _reload(self, tenant_id: str, cached: tuple[float, TenantKeys] | None) -> TenantKeys:
        keys = await self._load(tenant_id)
        if cached is not None and _unchanged(cached[1], keys):
            keys = cached[1]  # unchanged: what was verified against it still holds
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[tenant_id] = (time.monotonic() + self._cache_seconds, keys)
        return keys

    def forget(self, tenant_id: str) -> None:
        """Drop a tenant from the cache (after its keys changed in this process)."""
        self._cache.pop(tenant_id, None)
        self._loading.pop(tenant_id, None)  # a reload under way may predate the change

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
        origins, fields = tenant.allowed_origins, tenant.upstream_fields
        return TenantKeys(
            tuple(keys),
            cutoff,
            dict(tenant.rate_limits or {}),
            None if origins is None else frozenset(origins),
            None if fields is None else frozenset(fields),
            KeyDefaults.stored(tenant.key_defaults),
            self._prices(tenant),
        )

    @staticmethod
    def _prices(tenant: Tenant) -> dict[str, Price]:
        try:  # validated when the tenant set them
            return parse_prices(tenant.model_prices or {}, "model_prices")
        except PriceError as exc:
            log.error("tenant %s has unusable model prices: %s", tenant.id, exc)
            return {}

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
