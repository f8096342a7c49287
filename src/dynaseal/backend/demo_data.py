"""The original design's demo end user and tenant, so its walkthrough works unchanged."""

from __future__ import annotations

from pydantic import SecretStr

from dynaseal.backend.settings import BackendSettings
from dynaseal.core.original_demo import (
    DEMO_TENANT_API_KEY,
    DEMO_TENANT_ID,
    DEMO_USER_EMAIL,
    DEMO_USER_ID,
    DEMO_USER_PASSWORD,
    DEMO_USER_PASSWORD_HASH,
    DEMO_USER_USERNAME,
    DEMO_WEBHOOK_SECRET,
)
from dynaseal.storage import Database
from dynaseal.storage.backend_models import User

__all__ = [
    "DEMO_TENANT_API_KEY",
    "DEMO_TENANT_ID",
    "DEMO_USER_EMAIL",
    "DEMO_USER_ID",
    "DEMO_USER_PASSWORD",
    "DEMO_USER_USERNAME",
    "DEMO_WEBHOOK_SECRET",
    "load_demo_data",
    "with_demo_tenant",
]


def with_demo_tenant(settings: BackendSettings) -> BackendSettings:
    """Unless the operator configured a tenant of their own: sign with the demo tenant
    and trust its public webhook secret (or WEBHOOK_SECRET, when set)."""
    if settings.llm_key is not None or settings.llm_user_id:
        return settings
    return settings.model_copy(
        update={
            "llm_key": SecretStr(DEMO_TENANT_API_KEY),
            "llm_user_id": DEMO_TENANT_ID,
            "webhook_secret": settings.webhook_secret or SecretStr(DEMO_WEBHOOK_SECRET),
        }
    )


async def load_demo_data(db: Database) -> None:
    """Create the demo user once; later runs leave it as it is."""
    async with db.transaction() as session:
        if await session.get(User, DEMO_USER_ID) is None:
            session.add(
                User(
                    id=DEMO_USER_ID,
                    username=DEMO_USER_USERNAME,
                    email=DEMO_USER_EMAIL,
                    password_hash=DEMO_USER_PASSWORD_HASH,
                )
            )
