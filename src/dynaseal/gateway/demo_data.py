"""Loading the original design's demo tenant (its key is public: only on request)."""

from __future__ import annotations

from sqlalchemy import select

from dynaseal.core.original_demo import (
    DEMO_CALLBACK_URL,
    DEMO_TENANT_API_KEY,
    DEMO_TENANT_EMAIL,
    DEMO_TENANT_ID,
    DEMO_TENANT_PASSWORD_HASH,
    DEMO_TENANT_USERNAME,
    DEMO_WEBHOOK_SECRET,
)
from dynaseal.gateway import tenants
from dynaseal.gateway.callbacks import webhook_secrets
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import Tenant, TenantKey

DEMO_TENANT_KID = "demo-key"


async def load_demo_tenant(db: Database, box: SecretsBox, callback_url: str | None = None) -> None:
    """Create the demo tenant (callbacks to ``callback_url``, else the original's URL), or
    point an existing one at ``callback_url`` when given; a URL the demo backend set for
    itself (it runs on another port) stays when none is."""
    async with db.transaction() as session:
        tenant = await session.get(Tenant, DEMO_TENANT_ID)
        if tenant is None:
            tenant = await tenants.create_tenant(
                session,
                tenant_id=DEMO_TENANT_ID,
                username=DEMO_TENANT_USERNAME,
                email=DEMO_TENANT_EMAIL,
                password_hash=DEMO_TENANT_PASSWORD_HASH,
                callback_url=callback_url or DEMO_CALLBACK_URL,
                include_content=True,  # the original's callbacks carried the text
            )
        elif callback_url is not None:
            tenant.callback_url = callback_url
        # Every start, like the callback URL: the demo backend trusts only this secret.
        webhook_secrets.install(tenant, box, DEMO_WEBHOOK_SECRET)
        key = await session.scalar(select(TenantKey).where(TenantKey.kid == DEMO_TENANT_KID))
        if key is None:
            await tenants.create_api_key(
                session,
                box,
                DEMO_TENANT_ID,
                label="original demo key",
                secret=DEMO_TENANT_API_KEY,
                kid=DEMO_TENANT_KID,
            )
