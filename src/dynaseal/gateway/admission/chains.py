"""A presented dynamic key verified down to its tenant-signed root.

Root keys are what they always were. A child key (``typ: dsk-child+jwt``, made offline
by the holder of a bound key) wraps its parent: the root is verified with the tenant's
keys as any key, then every link — signed by the key its parent is bound to, each claim
no wider than the parent's, at most four deep (:func:`dynaseal.keys.verify_child_chain`).
The grant returned carries its ancestors' grants, so that every request is charged to,
and may be refused by, each of them (revoked, expired or spent).
"""

from __future__ import annotations

from dynaseal.gateway.admission.key_ring import KeyRing, TenantKeys
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.keys import InvalidKey, KeyGrant, peek_chain, verify_child_chain, verify_key


async def verify_presented(
    token: str, key_ring: KeyRing, settings: GatewaySettings, now: float
) -> tuple[KeyGrant, TenantKeys]:
    """The grant of ``token`` (root or child key) and its tenant's keys, or
    :class:`InvalidKey` saying why for the log."""
    chain = peek_chain(token)
    tenant_keys = await key_ring.keys_of(chain.root.tenant_id)
    leeway = settings.key_leeway_seconds
    root = verify_key(
        chain.root,
        tenant_keys.active(now),
        audience=settings.gateway_audience,
        now=now,
        leeway=leeway,
        max_lifetime=settings.key_max_lifetime_seconds,
    )
    cutoff = tenant_keys.not_before
    if cutoff is not None and (root.issued_at is None or root.issued_at < cutoff):
        # Original-format keys carry no iat: a cutoff refuses all of them.
        raise InvalidKey("minted before the tenant revoked its earlier keys")
    grants = verify_child_chain(chain, root, now=now, leeway=leeway)
    return grants[-1], tenant_keys
