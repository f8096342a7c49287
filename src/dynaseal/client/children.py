"""Child keys for sub-agents, derived on the device from its bound key (no backend call)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openai import AsyncOpenAI, OpenAI

from dynaseal.client.device_key import DeviceKey
from dynaseal.client.keys import DynamicKey
from dynaseal.keys import mint_child_key


@dataclass(frozen=True, slots=True)
class ChildKey:
    """A narrower key to hand to a sub-agent, with the gateway it is for.

    ``device_key`` is the child's own key pair when it was made bound with ``bind=True``
    (hand it to the sub-agent with the token); the sub-agent then needs it for every
    request. An unbound child is a bearer key: anyone holding it may spend it, within
    its caps and its parent's.
    """

    token: str = field(repr=False)
    event_id: str
    models: tuple[str, ...]
    max_tokens: int
    expires_at: int
    base_url: str
    jkt: str | None = None
    device_key: DeviceKey | None = field(default=None, repr=False)

    def openai(self, **options: Any) -> OpenAI:
        """A plain OpenAI client for the sub-agent (with DPoP proofs if bound)."""
        if self.device_key is not None:
            options.setdefault("http_client", self.device_key.http_client())
        return OpenAI(api_key=self.token, base_url=self.base_url, **options)

    def async_openai(self, **options: Any) -> AsyncOpenAI:
        if self.device_key is not None:
            options.setdefault("http_client", self.device_key.async_http_client())
        return AsyncOpenAI(api_key=self.token, base_url=self.base_url, **options)


def derive_child(
    parent: DynamicKey,
    device_key: DeviceKey,
    *,
    models: Sequence[str] | None,
    max_tokens: int | None,
    max_total_tokens: int | None,
    max_cost: Decimal | str | None,
    max_requests: int | None,
    ttl: float | None,
    bind: bool | str,
    key_algorithm: str,
) -> ChildKey:
    """See :meth:`dynaseal.client.DeviceClient.child_key`."""
    own_key = DeviceKey.generate(key_algorithm) if bind is True else None
    jkt = own_key.jkt if own_key is not None else bind if isinstance(bind, str) else None
    minted = mint_child_key(
        parent.token,
        device_key.private_key,
        now=time.time(),
        models=models,
        max_tokens=max_tokens,
        max_total_tokens=max_total_tokens,
        max_cost=max_cost,
        max_requests=max_requests,
        ttl_seconds=ttl,
        cnf_jkt=jkt,
    )
    grant = minted.grant
    return ChildKey(
        token=minted.token,
        event_id=grant.event_id,
        models=grant.models,
        max_tokens=grant.max_tokens,
        expires_at=int(grant.expires_at),
        base_url=parent.base_url,
        jkt=grant.jkt,
        device_key=own_key,
    )
