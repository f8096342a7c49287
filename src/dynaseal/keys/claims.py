"""What a verified dynamic key grants, independent of the wire format it came in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: ``typ`` header of keys in our own format (explicit typing, RFC 8725 section 3.11).
KEY_TYPE = "dsk+jwt"
#: ``aud`` our minting puts in keys unless told otherwise; the gateway expects the same.
DEFAULT_AUDIENCE = "dynaseal-gateway"
#: Claims of the original design, kept in every key we mint so old gateways accept them.
ORIGINAL_CLAIMS = ("api-key", "model", "max_tokens", "expiring", "event_id")

KeyFormat = Literal["original", "dynaseal"]


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """The rights a dynamic key carries once its signature and claims have been checked."""

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

    def allows_model(self, model: str) -> bool:
        return model in self.models
