"""A copy of the gateway's database alone cannot mint dynamic keys: tenant secrets are
sealed with a key derived from SECRET_KEY."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from dynaseal.core.server_secret import ServerSecret
from dynaseal.gateway import tenants
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.storage import Database
from dynaseal.storage.schema import prepare_schema


async def test_tenant_secrets_are_not_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    db = Database(f"sqlite:///{path}")
    box = SecretsBox(ServerSecret(SecretStr("the-server-secret-key-of-this-gateway")))
    try:
        await prepare_schema(db, "gateway", auto_create=True)
        async with db.transaction() as session:
            tenant = await tenants.create_tenant(session, username="shop", password="pw-123456")
            new = await tenants.create_api_key(session, box, tenant.id)
            kid, sealed = new.record.kid, new.record.secret_ciphertext
    finally:
        await db.dispose()
    assert new.secret is not None and sealed is not None
    dump = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert new.secret.encode() not in dump
    # Only the gateway's own SECRET_KEY opens it, and only for this key id.
    assert box.open(sealed, kid) == new.secret.encode()
    assert (
        SecretsBox(ServerSecret(SecretStr("another-server-secret-key"))).open(sealed, kid) is None
    )
    assert box.open(sealed, "another-kid") is None
