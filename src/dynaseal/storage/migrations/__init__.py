"""Alembic migrations of both services: one script directory and one version table each,
so the gateway and the backend can share a database and still evolve apart.

``env.py`` of each directory calls :func:`run_env`; :mod:`dynaseal.storage.schema` runs
them at start-up and for ``dynaseal gateway migrate`` / ``dynaseal backend migrate``.
Developers write new revisions with the repository's ``alembic.ini``
(``alembic -n gateway revision --autogenerate -m "..."``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from dynaseal.storage.backend_models import BackendBase
from dynaseal.storage.database import Database
from dynaseal.storage.gateway_models import GatewayBase
from dynaseal.storage.types import Money, UTCDateTime

Service = Literal["gateway", "backend"]


@dataclass(frozen=True)
class ServiceSchema:
    """Where a service's migrations live and which tables are its own."""

    service: Service
    metadata: MetaData

    @property
    def script_location(self) -> str:
        return str(Path(__file__).parent / self.service)

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.service}"

    def owns(self, table: str) -> bool:
        return table in self.metadata.tables

    def context_options(self) -> dict[str, Any]:
        """Options for Alembic's migration context, shared by migrations and comparisons."""
        return {
            "target_metadata": self.metadata,
            "version_table": self.version_table,
            "render_as_batch": True,  # SQLite can only ALTER by copying the table
            "compare_type": True,
            "include_name": self._include_name,
            "render_item": _render_item,
        }

    def _include_name(self, name: str | None, type_: str, _: Any) -> bool:
        # The other service's tables may share the database: never diff (or drop) them.
        return type_ != "table" or (name is not None and self.owns(name))


def _render_item(type_: str, obj: Any, _: Any) -> str | Literal[False]:
    # Revisions must not import application types that may change after they are written.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, Money):
        return "sa.BigInteger()"
    return False


SCHEMAS: dict[Service, ServiceSchema] = {
    "gateway": ServiceSchema("gateway", GatewayBase.metadata),
    "backend": ServiceSchema("backend", BackendBase.metadata),
}


def run_env(service: Service) -> None:
    """The body of ``env.py``: migrate on the connection the runner handed over, or (the
    ``alembic`` command of a developer) on the ``sqlalchemy.url`` of ``alembic.ini``."""
    schema = SCHEMAS[service]
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection, schema)
    else:
        asyncio.run(_migrate_url(context.config.get_main_option("sqlalchemy.url") or "", schema))


async def _migrate_url(url: str, schema: ServiceSchema) -> None:
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(_migrate, schema)
    finally:
        await db.dispose()


def _migrate(connection: Connection, schema: ServiceSchema) -> None:
    context.configure(connection=connection, **schema.context_options())
    with context.begin_transaction():
        context.run_migrations()
