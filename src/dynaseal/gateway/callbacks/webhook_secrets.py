"""Per-tenant webhook secrets: the Standard Webhooks ``whsec_`` secrets callbacks are
signed with. Stored sealed by the secrets box; shown to the owner once, when issued.

Rotation keeps the previous secret signing alongside the new one for an overlap period,
so a receiver can switch secrets without refusing a single callback.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

from standardwebhooks.webhooks import Webhook

from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.storage.gateway_models import Tenant
from dynaseal.storage.types import utcnow

_SECRET_BYTES = 32


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _context(tenant_id: str) -> str:
    # Binds the ciphertext to its tenant, so a sealed secret can't be moved to another row.
    return f"webhook-secret:{tenant_id}"


def install(tenant: Tenant, box: SecretsBox, secret: str | None = None) -> str:
    """Give the tenant a (new or given) secret, dropping any previous one; returns it."""
    secret = secret or new_secret()
    tenant.webhook_secret_sealed = box.seal(secret.encode(), _context(tenant.id))
    tenant.previous_webhook_secret_sealed = None
    tenant.previous_webhook_secret_until = None
    return secret


def rotate(tenant: Tenant, box: SecretsBox, overlap: timedelta) -> str:
    """A new secret; the current one keeps signing too until ``overlap`` has passed."""
    current = tenant.webhook_secret_sealed
    secret = install(tenant, box)
    if current is not None and overlap > timedelta(0):
        tenant.previous_webhook_secret_sealed = current
        tenant.previous_webhook_secret_until = utcnow() + overlap
    return secret


def signing_secrets(tenant: Tenant, box: SecretsBox, now: datetime) -> list[str]:
    """The secrets a callback is signed with now: the current one, and the previous one
    while the rotation overlap lasts. Rows sealed under another SECRET_KEY are skipped."""
    sealed = [tenant.webhook_secret_sealed]
    until = tenant.previous_webhook_secret_until
    if until is not None and until > now:
        sealed.append(tenant.previous_webhook_secret_sealed)
    opened = (box.open(s, _context(tenant.id)) for s in sealed if s is not None)
    return [s.decode() for s in opened if s is not None]


def signature_header(secrets_: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` value: one space-separated ``v1,<sig>`` per secret."""
    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets_)
