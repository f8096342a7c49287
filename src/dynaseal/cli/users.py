"""``dynaseal backend create-user``: an end user of the reference backend, from the shell
of the machine it runs on (its database, like ``migrate``) — no admin login needed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from dynaseal.cli.options import DatabaseUrl, Flag, JsonOutput, Password, given
from dynaseal.cli.output import EXIT_CONFIG, as_json, console, fail
from dynaseal.cli.schema import database_job_or_exit

if TYPE_CHECKING:
    from dynaseal.backend.settings import BackendSettings
    from dynaseal.storage import Database


def create_user(
    username: Annotated[str, typer.Argument(help="The name the user logs in with.")],
    password: Annotated[
        str | None,
        Password("DYNASEAL_PASSWORD", "The user's password (`dynaseal chat` reads it there too)."),
    ] = None,
    email: Annotated[str | None, typer.Option(help="Email; the user may log in with it.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="A model the user's keys allow (repeat for several).",
            show_default="DEFAULT_MODELS",
        ),
    ] = None,
    key_budget_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="Tokens per dynamic key.", show_default="KEY_BUDGET_TOKENS"),
    ] = None,
    daily_token_quota: Annotated[
        int | None,
        typer.Option(
            min=0, help="Tokens per UTC day (0: unlimited).", show_default="USER_DAILY_TOKEN_QUOTA"
        ),
    ] = None,
    admin: Annotated[bool, Flag("--admin", help="May create users over the API too.")] = False,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Create an end user of the backend: a device logs in as this user to get keys.

    Writes to the backend's database (DATABASE_URL), creating its schema if it is empty.
    Over HTTP, an admin does the same with `POST /v1/user/create`.
    """
    from pydantic import ValidationError

    from dynaseal.backend.settings import BackendSettings
    from dynaseal.cli.settings import settings_or_exit
    from dynaseal.core.errors import APIError
    from dynaseal.core.logs import configure_logging

    configure_logging("warning")
    password = given(password, "DYNASEAL_PASSWORD")
    settings = settings_or_exit(BackendSettings, database_url=database_url)
    try:
        created = database_job_or_exit(
            "create the user",
            settings.database_url,
            lambda: _create(
                settings,
                {
                    "username": username,
                    "password": password,
                    "email": email,
                    "is_admin": admin,
                    "allowed_models": model or None,
                    "key_budget_tokens": key_budget_tokens,
                    "daily_token_quota": daily_token_quota,
                },
            ),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"{'.'.join(map(str, first['loc']))}: {first['msg']}", EXIT_CONFIG)
    except APIError as exc:
        fail(exc.message)
    if json_output:
        as_json(created)
    else:
        console.print(
            f"created user {created['username']} (id {created['id']}), models "
            f"{', '.join(created['policy']['models'])}"
        )


async def _create(settings: BackendSettings, fields: dict[str, Any]) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    from dynaseal.backend import crud
    from dynaseal.backend.routes.users import user_view
    from dynaseal.backend.schemas import UserCreate
    from dynaseal.cli.schema import on_database
    from dynaseal.core.passwords import hash_password
    from dynaseal.storage.schema import prepare_schema

    body = UserCreate(**fields)  # the same checks as POST /v1/user/create

    async def create(db: Database) -> dict[str, Any]:
        await prepare_schema(db, "backend", auto_create=True)
        password_hash = await run_in_threadpool(hash_password, body.password)
        async with db.transaction() as session:
            user = await crud.create_user(session, body, password_hash)
        return user_view(user, settings).model_dump()

    return await on_database(settings.database_url, create)
