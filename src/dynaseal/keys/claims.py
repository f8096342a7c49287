"""What a verified dynamic key grants, independent of the wire format it came in."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

#: ``typ`` header of keys in our own format (explicit typing, RFC 8725 section 3.11).
KEY_TYPE = "dsk+jwt"
#: ``aud`` our minting puts in keys unless told otherwise; the gateway expects the same.
DEFAULT_AUDIENCE = "dynaseal-gateway"
#: Claims of the original design, kept in every key we mint so old gateways accept them.
ORIGINAL_CLAIMS = ("api-key", "model", "max_tokens", "expiring", "event_id")

KeyFormat = Literal["original", "dynaseal", "child"]


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """The rights a dynamic key carries once its signature and claims have been checked.

    A child key's grant (``format == "child"``) has its own ``event_id`` and caps; it is
    only ever used together with the grants of all its ancestors (see
    :func:`dynaseal.keys.verify_child_chain`).
    """

    tenant_id: str
    event_id: str
    models: tuple[str, ...]
    max_tokens: int
    expires_at: float
    format: KeyFormat
    kid: str | None = None
    issued_at: float | None = None
    not_before: float | None = None
    max_requests: int | None = None
    sub: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: ``cnf.jkt``: the key is only usable with DPoP proofs by the device key of this
    #: RFC 7638 thumbprint.
    jkt: str | None = None
    #: Optional cumulative caps of prompt + generated tokens and of cost in USD.
    max_total_tokens: int | None = None
    max_cost: Decimal | None = None
    #: For a child key: the event id of the key it was derived from, and how many
    #: derivations separate it from the tenant-signed root (0 for the root).
    parent_event_id: str | None = None
    depth: int = 0
    #: For a child key: the grants of its ancestors, root first - every request is
    #: charged to, and may be refused by, each of them too. Empty for a root key.
    ancestors: tuple[KeyGrant, ...] = field(default=(), compare=False, repr=False)

    @property
    def chain(self) -> tuple[KeyGrant, ...]:
        """The keys a request with this one is charged to: root first, this one last."""
        return (*self.ancestors, self)

    def allows_model(self, model: str) -> bool:
        return model in self.models
