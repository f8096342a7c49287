"""Database URLs for tests, so one suite covers SQLite and PostgreSQL.

``DYNASEAL_TEST_DATABASE`` picks what :func:`fresh_database` hands out: unset or
``sqlite`` for a SQLite file in a temporary directory; ``postgresql`` for a new database
on the local server (:data:`LOCAL_POSTGRESQL`); or the URL of another PostgreSQL database
to create the test databases from. Each PostgreSQL database is dropped when its user is
done with it.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Literal

import asyncpg
import pytest
from sqlalchemy.engine import make_url

ENV = "DYNASEAL_TEST_DATABASE"
LOCAL_POSTGRESQL = "postgresql://postgres@127.0.0.1:5432/test"

Kind = Literal["sqlite", "postgresql"]
#: What the ``database_url`` fixture hands out: the URL of a fresh database per name.
NewDatabase = Callable[[str], str]


def chosen() -> tuple[Kind, str | None]:
    """The kind of database the suite runs on, and the PostgreSQL server URL if any."""
    value = os.environ.get(ENV, "").strip() or "sqlite"
    if value == "sqlite":
        return "sqlite", None
    if value == "postgresql":
        return "postgresql", LOCAL_POSTGRESQL
    if value.startswith(("postgresql://", "postgres://")):
        return "postgresql", value
    raise pytest.UsageError(f"{ENV} must be sqlite, postgresql or a postgresql:// URL")


@contextmanager
def fresh_database(directory: Path, name: str, kind: Kind | None = None) -> Iterator[str]:
    """The URL of an empty database named after ``name``, gone afterwards.

    ``kind`` overrides the suite's choice, for tests about one database in particular.
    """
    suite_kind, server = chosen()
    if (kind or suite_kind) == "sqlite":
        yield f"sqlite:///{directory / name}.db"
        return
    server = require_postgresql(server or LOCAL_POSTGRESQL)
    database = f"dynaseal_test_{re.sub(r'[^a-z0-9]+', '_', name.lower())[:30]}_"
    database += secrets.token_hex(4)
    _execute(server, f'CREATE DATABASE "{database}"')
    try:
        yield make_url(server).set(database=database).render_as_string(hide_password=False)
    finally:
        _execute(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def require_postgresql(server: str = LOCAL_POSTGRESQL) -> str:
    """``server`` if it answers; otherwise skip the test, or fail it in CI (CI=true)."""
    problem = _unreachable(server)
    if problem is None:
        return server
    message = f"PostgreSQL is not reachable at {make_url(server)!r}: {problem}"
    if os.environ.get("CI") == "true" or chosen()[0] == "postgresql":
        pytest.fail(message)
    pytest.skip(message)


@cache
def _unreachable(server: str) -> str | None:
    try:
        _execute(server, "SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _execute(server: str, statement: str) -> None:
    """Run one statement on the server's maintenance database.

    In a thread of its own: the test may be running in pytest-asyncio's event loop.
    """

    async def run() -> None:
        connection = await asyncpg.connect(server, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()
