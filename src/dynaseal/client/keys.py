"""The dynamic key as the device sees it, and when to get a new one."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynaseal.client.errors import DeviceClientError
from dynaseal.keys import InvalidKey, peek_key

#: Header the gateway sets on refusals that no retry with the same key can fix.
REFUSAL_HEADER = "x-dynaseal-refusal"
#: Refusals after which the key is useless: budget spent, or expired / revoked / invalid.
KEY_IS_DEAD = frozenset({"insufficient_quota", "invalid_key"})
#: The refusal after which a new key helps at once: this key's budget is spent.
KEY_IS_SPENT = "insufficient_quota"


@dataclass(slots=True)
class DynamicKey:
    """A key from the backend. Its ``repr`` leaves the token out: keys end up in logs."""

    token: str = field(repr=False)
    event_id: str
    model: str
    models: tuple[str, ...]
    max_tokens: int
    expires_at: int
    base_url: str
    #: The device key thumbprint the key is bound to (its ``cnf.jkt``, read from the
    #: token itself, not from what the response says); ``None``: a bearer key.
    jkt: str | None = None
    spent: bool = field(default=False, compare=False)

    @classmethod
    def from_response(cls, data: Any) -> DynamicKey:
        try:
            token = str(data["token"])
            return cls(
                token=token,
                event_id=str(data["event_id"]),
                model=str(data["model"]),
                models=tuple(data.get("models") or (data["model"],)),
                max_tokens=int(data["max_tokens"]),
                expires_at=int(data.get("expires_at", data.get("expiring"))),
                base_url=str(data["base_url"]),
                jkt=_bound_to(token),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DeviceClientError(None, f"backend sent a malformed key: {exc!r}") from None

    def is_usable(self, margin_seconds: float, now: float | None = None) -> bool:
        """Still good for a request that may take ``margin_seconds`` to reach the gateway."""
        now = time.time() if now is None else now
        return not self.spent and now + margin_seconds < self.expires_at


def _bound_to(token: str) -> str | None:
    try:
        cnf = peek_key(token).claims.get("cnf")
    except InvalidKey:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None


def is_dead_key_refusal(status: int, headers: Mapping[str, str]) -> bool:
    """The gateway said this key will never work again (as opposed to "slow down")."""
    return status in (401, 429) and headers.get(REFUSAL_HEADER) in KEY_IS_DEAD


def is_spent_key_refusal(status: int, headers: Mapping[str, str]) -> bool:
    """The gateway refused the call because the key's budget is spent: worth one retry
    with a new key. Told apart by the gateway's own header, so that an upstream's
    ``insufficient_quota`` relayed as is does not count."""
    return status == 429 and headers.get(REFUSAL_HEADER) == KEY_IS_SPENT
