"""``dynaseal gateway migrate`` / ``dynaseal backend migrate``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, TypeVar

from dynaseal.cli.options import DatabaseUrl
from dynaseal.cli.output import EXIT_CONFIG, console, fail

if TYPE_CHECKING:
    from dynaseal.core.settings import ServiceSettings
    from dynaseal.storage import Database

T = TypeVar("T")


def service_settings(service: str) -> type[ServiceSettings]:
    """The settings class of ``service`` (imported only when a command runs)."""
    if service == "gateway":
        from dynaseal.gateway.settings import GatewaySettings

        return GatewaySettings
    from dynaseal.backend.settings import BackendSettings

    return BackendSettings


def migrate_command(service: str) -> Callable[..., None]:
    """The ``migrate`` sub-command of ``service``."""

    def migrate(database_url: DatabaseUrl = None) -> None:
        from dynaseal.cli.settings import settings_or_exit
        from dynaseal.core.logs import configure_logging
        from dynaseal.storage.schema import upgrade

        configure_logging("warning")
        settings = settings_or_exit(service_settings(service), database_url=database_url)
        shown = _shown(settings.database_url)
        done = database_job_or_exit(
            f"migrate the {service} database",
            settings.database_url,
            lambda: on_database(settings.database_url, lambda db: upgrade(db, service)),  # type: ignore[arg-type]
        )
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


def database_job_or_exit(
    doing: str, database_url: str, job: Callable[[], Coroutine[object, object, T]]
) -> T:
    """Run ``job`` to completion; a problem ends the command in one red line: exit 2 for
    configuration (a malformed URL, an out-of-date schema), 1 for a database or Redis
    that cannot be reached."""
    from sqlalchemy.exc import DBAPIError

    from dynaseal.core.settings import ConfigError
    from dynaseal.core.startup import DependencyUnavailable

    try:
        return asyncio.run(job())
    except ConfigError as exc:
        fail(f"cannot {doing}: {exc}", EXIT_CONFIG)
    except DependencyUnavailable as exc:
        fail(f"cannot {doing}: {exc}")
    except (OSError, DBAPIError) as exc:
        fail(f"cannot {doing}: the database {_shown(database_url)} is not reachable: {exc}")


def _shown(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


async def on_database(database_url: str, job: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``job`` on a database opened for it, closed afterwards."""
    from dynaseal.storage import Database

    db = Database(database_url)
    try:
        return await job(db)
    finally:
        await db.dispose()
