"""``dynaseal gateway migrate`` / ``dynaseal backend migrate``, and the schema check the
service commands run before serving."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from dynaseal.backend.settings import BackendSettings
from dynaseal.cli.logs import configure_logging
from dynaseal.cli.output import EXIT_CONFIG, console, fail
from dynaseal.cli.settings import settings_or_exit
from dynaseal.core.settings import ConfigError, ServiceSettings
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.migrations import Service
from dynaseal.storage.schema import Migration, prepare_schema, upgrade

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="SQLAlchemy URL of the database (sqlite:///file.db or postgresql://...). "
        "Overrides DATABASE_URL.",
        show_default="DATABASE_URL, else a SQLite file in the working directory",
    ),
]

T = TypeVar("T")

_SETTINGS: dict[Service, type[ServiceSettings]] = {
    "gateway": GatewaySettings,
    "backend": BackendSettings,
}


def schema_or_exit(database_url: str, service: Service) -> None:
    """Before serving: create an empty database's schema, refuse an out-of-date one.

    Done here, once, rather than only in each worker's start-up, so a wrong schema is a
    red line and exit status 2. A database that cannot be reached yet is left to the
    service's start-up, which waits for it.
    """
    try:
        asyncio.run(_on(database_url, lambda db: prepare_schema(db, service, auto_create=True)))
    except ConfigError as exc:  # a SchemaError, or a malformed URL
        fail(str(exc), EXIT_CONFIG)
    except (OSError, DBAPIError):
        return


def migrate_command(service: Service) -> Callable[..., None]:
    """The ``migrate`` sub-command of ``service``."""

    def migrate(database_url: DatabaseUrl = None) -> None:
        configure_logging("warning")
        settings = settings_or_exit(_SETTINGS[service], database_url=database_url)
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        try:
            done: Migration = asyncio.run(
                _on(settings.database_url, lambda db: upgrade(db, service))
            )
        except ConfigError as exc:  # a SchemaError, or a malformed URL
            fail(str(exc), EXIT_CONFIG)
        except (OSError, DBAPIError) as exc:
            fail(f"cannot reach the {service} database {shown}: {exc}")
        if done.before == done.after:
            console.print(f"the {service} database {shown} is already at revision {done.after}")
        else:
            console.print(
                f"migrated the {service} database {shown} from revision "
                f"{done.before or 'none'} to {done.after}"
            )

    migrate.__doc__ = f"""Bring the {service} database to the schema this version needs.

    Applies the missing migrations (none when it is up to date) and prints the revision
    before and after. Run it after upgrading Dynaseal, before starting the {service};
    an empty database is also set up by the {service} itself on its first start.
    """
    return migrate


async def _on(database_url: str, job: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(database_url)
    try:
        return await job(db)
    finally:
        await db.dispose()
