"""Alembic migrations: an empty database reaches head and matches the models exactly (so a
model change without a migration fails here), `migrate` is idempotent, and a service
refuses to start on a schema it was not written for."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import get_args

import pytest
import uvicorn
from alembic.script import ScriptDirectory
from sqlalchemy import text

from dynaseal.gateway.app import create_app as create_gateway
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.migrations import SCHEMAS, Service
from dynaseal.storage.schema import (
    Migration,
    SchemaError,
    SchemaState,
    differences,
    prepare_schema,
    upgrade,
)
from support.commands import run_dynaseal
from support.databases import Kind, NewDatabase, fresh_database
from support.servers import free_port

SERVICES: tuple[Service, ...] = get_args(Service)


async def execute(db: Database, *statements: str) -> None:
    async with db.engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def head(db: Database, service: Service) -> str:
    """The revision this version of Dynaseal needs (the database is not consulted)."""
    head = ScriptDirectory(SCHEMAS[service].script_location).get_current_head()
    assert head is not None
    return head


@pytest.mark.parametrize("kind", get_args(Kind))
async def test_both_services_migrate_into_one_database_and_match_their_models(
    kind: Kind, tmp_path: Path
) -> None:
    """The `alembic check` of CI: a model change without a migration shows up here."""
    with fresh_database(tmp_path, "shared", kind) as url:
        db = Database(url)
        try:
            for service in SERVICES:
                done = await upgrade(db, service)
                assert done.before is None and done.after == await head(db, service)
            for service in SERVICES:
                assert await differences(db, service) == [], (
                    f"the {service} models differ from its migrations: write one with "
                    f"`alembic -n {service} revision --autogenerate` (see alembic.ini)"
                )
                again = await upgrade(db, service)
                assert again == Migration(again.after, again.after)  # a no-op
        finally:
            await db.dispose()


async def test_an_empty_database_gets_its_schema_at_start_up(
    database_url: NewDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(database_url("gateway"))
    try:
        with pytest.raises(SchemaError) as refused:
            await prepare_schema(db, "gateway", auto_create=False)
        with caplog.at_level(logging.INFO, logger="dynaseal.schema"):
            await prepare_schema(db, "gateway", auto_create=True)
            await prepare_schema(db, "gateway", auto_create=True)
        current = await head(db, "gateway")
    finally:
        await db.dispose()
    assert str(refused.value) == (
        f"the gateway database has no schema, this version needs revision {current}: "
        "run `dynaseal gateway migrate`"
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"the gateway database was empty: created its schema at revision {current}"
    ]


async def test_tables_without_a_revision_are_refused_then_adopted_by_migrate(
    database_url: NewDatabase,
) -> None:
    db = Database(database_url("backend"))
    try:
        current = (await upgrade(db, "backend")).after
        await execute(db, "DROP TABLE alembic_version_backend")  # as create_all left it
        with pytest.raises(SchemaError) as refused:
            await prepare_schema(db, "backend", auto_create=True)
        assert await upgrade(db, "backend") == Migration(None, current)
        await prepare_schema(db, "backend", auto_create=True)
    finally:
        await db.dispose()
    assert str(refused.value) == (
        "the backend database has tables but no recorded schema revision, this version "
        f"needs revision {current}: run `dynaseal backend migrate`"
    )


async def test_migrate_does_not_adopt_tables_that_differ_from_head(
    database_url: NewDatabase,
) -> None:
    db = Database(database_url("gateway"))
    try:
        await upgrade(db, "gateway")
        await execute(db, "DROP TABLE alembic_version_gateway", "DROP INDEX ix_delivery_due")
        with pytest.raises(SchemaError, match=r"differ from revision \w+ \(1 differences.*by hand"):
            await upgrade(db, "gateway")
    finally:
        await db.dispose()


async def test_a_revision_this_version_does_not_know_is_refused(
    database_url: NewDatabase,
) -> None:
    db = Database(database_url("gateway"))
    try:
        current = (await upgrade(db, "gateway")).after
        await execute(db, "UPDATE alembic_version_gateway SET version_num = 'f00dfeed'")
        for attempt in (prepare_schema(db, "gateway", auto_create=True), upgrade(db, "gateway")):
            with pytest.raises(SchemaError) as refused:
                await attempt
            assert str(refused.value) == (
                "the gateway database schema is at revision f00dfeed, which this version does "
                f"not know (was it migrated by a newer Dynaseal?); this version needs {current}"
            )
    finally:
        await db.dispose()


def test_an_older_revision_names_both_revisions_and_the_command() -> None:
    state = SchemaState("backend", current="0ld", head="new", has_tables=True, known=True)
    assert state.problem() == (
        "the backend database schema is at revision 0ld, this version needs new: "
        "run `dynaseal backend migrate`"
    )


def test_every_service_has_its_own_version_table() -> None:
    assert {SCHEMAS[s].version_table for s in SERVICES} == {
        "alembic_version_gateway",
        "alembic_version_backend",
    }


@pytest.fixture
async def unrecorded_gateway_db(database_url: NewDatabase) -> str:
    """A gateway database whose tables have no recorded revision."""
    url = database_url("gateway")
    db = Database(url)
    try:
        await upgrade(db, "gateway")
        await execute(db, "DROP TABLE alembic_version_gateway")
    finally:
        await db.dispose()
    return url


def test_the_gateway_refuses_to_start_with_the_message_not_a_traceback(
    unrecorded_gateway_db: str, capfd: pytest.CaptureFixture[str]
) -> None:
    app = create_gateway(GatewaySettings(database_url=unrecorded_gateway_db))
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_level="warning"))
    with pytest.raises(SystemExit) as exited:
        server.run()  # as `uvicorn` runs it
    assert exited.value.code == 3  # uvicorn's "startup failed"
    logged = capfd.readouterr().err
    assert "the gateway database has tables but no recorded schema revision" in logged
    assert "run `dynaseal gateway migrate`" in logged
    assert "Traceback" not in logged


def test_the_cli_refuses_then_migrates_then_says_up_to_date(
    unrecorded_gateway_db: str, tmp_path: Path
) -> None:
    refused = run_dynaseal(
        "gateway", "--port", "0", "--database-url", unrecorded_gateway_db, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "run `dynaseal gateway migrate`" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr

    migrated = run_dynaseal(
        "gateway", "migrate", "--database-url", unrecorded_gateway_db, cwd=tmp_path
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated the gateway database" in migrated.stdout
    assert "from revision none to " in migrated.stdout

    again = run_dynaseal(
        "gateway", "migrate", "--database-url", unrecorded_gateway_db, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert "is already at revision" in again.stdout
