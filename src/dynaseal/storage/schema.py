"""Bringing a service's database to the schema this version needs, or refusing to run.

An empty database is migrated at start-up, so a first run just works; anything else that
is not at the head revision stops the service with a message naming the command that
fixes it, because running new code on an old schema corrupts data quietly.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from dynaseal.core.settings import ConfigError
from dynaseal.storage.database import Database
from dynaseal.storage.migrations import SCHEMAS, Service, ServiceSchema

log = logging.getLogger("dynaseal.schema")


class SchemaError(ConfigError):
    """The database schema is not the one this version of Dynaseal needs."""


@dataclass(frozen=True)
class SchemaState:
    """What a service's database holds compared with what this version needs."""

    service: Service
    current: str | None
    head: str
    has_tables: bool
    known: bool  # ``current`` is a revision of this version's history

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        return self.current is None and not self.has_tables

    def problem(self) -> str:
        """Why the service cannot run on this database, and what to do about it."""
        fix = f"run `dynaseal {self.service} migrate`"
        where = f"the {self.service} database"
        if self.empty:
            return f"{where} has no schema, this version needs revision {self.head}: {fix}"
        if self.current is None:
            return (
                f"{where} has tables but no recorded schema revision, this version needs "
                f"revision {self.head}: {fix}"
            )
        if not self.known:
            return (
                f"{where} schema is at revision {self.current}, which this version does not "
                f"know (was it migrated by a newer Dynaseal?); this version needs {self.head}"
            )
        return (
            f"{where} schema is at revision {self.current}, this version needs {self.head}: {fix}"
        )


@dataclass(frozen=True)
class Migration:
    """What ``migrate`` did: ``before`` is None for a database that had no revision."""

    before: str | None
    after: str


async def prepare_schema(db: Database, service: Service, *, auto_create: bool) -> None:
    """Start-up check: create the schema of an empty database (when ``auto_create``),
    accept one at head, raise :class:`SchemaError` for anything else."""
    async with db.engine.begin() as connection:
        created = await connection.run_sync(_prepare, SCHEMAS[service], auto_create)
    if created:
        log.info("the %s database was empty: created its schema at revision %s", service, created)


async def upgrade(db: Database, service: Service) -> Migration:
    """Migrate to head (``dynaseal <service> migrate``); a no-op when already there.

    Tables without a recorded revision are adopted only if they match head exactly.
    """
    async with db.engine.begin() as connection:
        return await connection.run_sync(_upgrade, SCHEMAS[service])


async def differences(db: Database, service: Service) -> list[Any]:
    """What Alembic would change to make the database match the models (empty at head)."""
    async with db.engine.connect() as connection:
        return await connection.run_sync(_differences, SCHEMAS[service])


def _prepare(connection: Connection, schema: ServiceSchema, auto_create: bool) -> str | None:
    _lock(connection, schema)
    state = _state(connection, schema)
    if state.up_to_date:
        return None
    if not (state.empty and auto_create):
        raise SchemaError(state.problem())
    command.upgrade(_config(connection, schema), "head")
    return state.head


def _upgrade(connection: Connection, schema: ServiceSchema) -> Migration:
    _lock(connection, schema)
    state = _state(connection, schema)
    config = _config(connection, schema)
    if state.current is None and state.has_tables:
        changes = _differences(connection, schema)
        if changes:
            raise SchemaError(
                f"the {schema.service} database has tables but no recorded schema revision, "
                f"and they differ from revision {state.head} ({len(changes)} differences, "
                f"first: {changes[0]}): migrate them by hand, then record the revision with "
                "Alembic's `stamp`"
            )
        command.stamp(config, "head")
    elif not state.known:
        raise SchemaError(state.problem())
    else:
        command.upgrade(config, "head")
    return Migration(state.current, state.head)


def _state(connection: Connection, schema: ServiceSchema) -> SchemaState:
    script = ScriptDirectory(schema.script_location)
    head = script.get_current_head()
    assert head is not None, f"no migrations in {schema.script_location}"
    context = MigrationContext.configure(connection, opts={"version_table": schema.version_table})
    current = context.get_current_revision()
    tables = inspect(connection).get_table_names()
    return SchemaState(
        service=schema.service,
        current=current,
        head=head,
        has_tables=any(schema.owns(name) for name in tables),
        known=current is None or _known(script, current),
    )


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _differences(connection: Connection, schema: ServiceSchema) -> list[Any]:
    context = MigrationContext.configure(connection, opts=schema.context_options())
    differences: list[Any] = compare_metadata(context, schema.metadata)
    return differences


def _config(connection: Connection, schema: ServiceSchema) -> Config:
    config = Config(attributes={"connection": connection})
    config.set_main_option("script_location", schema.script_location)
    return config


def _lock(connection: Connection, schema: ServiceSchema) -> None:
    """Serialise schema changes between processes starting at once (replicas, workers).

    SQLite transactions already hold the write lock (``BEGIN IMMEDIATE``); PostgreSQL
    takes a transaction-scoped advisory lock.
    """
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(schema.version_table.encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
