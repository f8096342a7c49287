"""Keys in use before budgets counted generated tokens only keep working after the
upgrade: their rows are carried over from the ledger, and the gateway serves them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from dynaseal.core.original_demo import DEMO_TENANT_ID
from dynaseal.gateway.app import create_app
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.migrations import SCHEMAS
from dynaseal.storage.schema import upgrade
from support.databases import NewDatabase
from support.servers import serve
from support.tenants import event_of, original_key
from support.upstream import FakeUpstream

#: The revision before budgets in three currencies.
_OURS = ScriptDirectory(SCHEMAS["gateway"].script_location).get_revision("534ced08e148")
BEFORE = str(_OURS.down_revision if _OURS is not None else None)


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = Config(attributes={"connection": connection})
    config.set_main_option("script_location", SCHEMAS["gateway"].script_location)
    command.upgrade(config, revision)


async def _old_database(url: str, event_id: str) -> None:
    """A key that made three requests of 11 prompt + 8 generated tokens, as the earlier
    schema booked them (``spent`` in prompt + generated tokens)."""
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(_upgrade_to, BEFORE)
            await connection.execute(
                text(
                    "INSERT INTO key_budgets (tenant_id, event_id, budget, reserved, spent, "
                    "requests, expires_at, revoked) VALUES (:t, :e, 100, 0, 57, 3, :x, false)"
                ),
                {"t": DEMO_TENANT_ID, "e": event_id, "x": datetime(2099, 1, 1, tzinfo=UTC)},
            )
            for i in range(3):
                await connection.execute(
                    text(
                        "INSERT INTO usage_records (request_id, tenant_id, event_id, model, "
                        "stream, prompt_tokens, completion_tokens, total_tokens, usage_source, "
                        "status, started_at, ended_at, latency_ms) VALUES (:r, :t, :e, 'm', "
                        "false, 11, 8, 19, 'upstream', 'completed', :x, :x, 1)"
                    ),
                    {
                        "r": f"req_{i}_{event_id}",
                        "t": DEMO_TENANT_ID,
                        "e": event_id,
                        "x": datetime(2026, 1, 1, tzinfo=UTC),
                    },
                )
        done = await upgrade(db, "gateway")
        assert done.before == BEFORE
        async with db.engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT spent, total_spent, cost_spent, requests FROM key_budgets "
                        "WHERE event_id = :e"
                    ),
                    {"e": event_id},
                )
            ).one()
        assert tuple(row) == (24, 57, 0, 3)
    finally:
        await db.dispose()


async def test_a_key_in_use_before_the_upgrade_keeps_its_usage(
    database_url: NewDatabase, tmp_path: Path, upstream: FakeUpstream
) -> None:
    key = original_key(max_tokens=40, expiring=int(time.time()) + 600)
    url = database_url("upgraded")
    await _old_database(url, event_of(key))
    settings = GatewaySettings(database_url=url, openai_base_url=f"{upstream.url}/v1")
    with serve(create_app(settings, demo=True)) as gateway:
        headers = {"Authorization": f"Bearer {key}"}
        seen = httpx.get(gateway.url + "/v1/key", headers=headers).json()
        assert seen["budgets"]["max_tokens"]["used"] == 24
        assert seen["requests"]["used"] == 3
        body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
        answered = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, json=body)
        assert answered.status_code == 200
    assert upstream.requests[0]["max_tokens"] == 16  # what is left to generate
