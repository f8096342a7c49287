"""Checking that a usage callback really comes from the gateway: a Standard Webhooks
signature over the exact body, made within five minutes (the library's tolerance), so a
forged callback is refused and a captured one cannot be replayed later."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from dynaseal.core.errors import APIError

log = logging.getLogger("dynaseal.backend")


class CallbackVerifier:
    def __init__(self, secret: str | None) -> None:
        self._webhook = Webhook(secret) if secret else None
        self._warned = False

    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """Raise a 401 unless the callback is signed with the secret; ``True`` when it is.
        Without a secret everything passes unchecked (``False``: the original gateway
        never signed), with a warning once."""
        if self._webhook is None:
            if not self._warned:
                self._warned = True
                log.warning(
                    "WEBHOOK_SECRET is not set: usage callbacks are accepted without "
                    "checking that the gateway sent them"
                )
            return False
        try:
            self._webhook.verify(body, dict(headers), json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            # ValueError: a garbled signature header (bad base64, no "v1," prefix).
            log.warning("usage callback refused: %s", exc)
            raise APIError(
                401,
                "The callback's webhook signature is missing, invalid or too old.",
                code="invalid_signature",
            ) from None
        return True
