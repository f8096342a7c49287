"""One async SQLAlchemy engine per service; SQLite by default, PostgreSQL in production."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from dynaseal.core.settings import ConfigError

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_database_url(url: str) -> str:
    """Accept plain ``sqlite:///`` / ``postgresql://`` URLs and pick the async driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL: not a database URL: {url!r}") from exc
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError("DATABASE_URL: only SQLite and PostgreSQL are supported")
    return parsed.render_as_string(hide_password=False)


def _sqlite_connect(dbapi_connection: Any, _: Any) -> None:
    # Let SQLAlchemy, not the driver, start transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_connect_reader(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Take the write lock up front: a transaction that reads then writes would otherwise
    # fail with "database is locked" when another process wrote in between, instead of
    # waiting its turn (busy_timeout only covers waiting for the lock).
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _without_nul(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return {name: _replace_nul(value) for name, value in parameters.items()}
    return type(parameters)(_replace_nul(value) for value in parameters)


def _replace_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _postgresql_no_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
) -> tuple[str, Any]:
    # PostgreSQL text cannot hold NUL (SQLite's can), and a NUL in a key's event id, a model
    # name or a login would fail the request with a 500. Every string parameter, lookups
    # included, carries U+FFFD instead, so a stored value and its lookup still agree.
    # Several rows arrive as a list of rows; SQLAlchemy's "insertmanyvalues" (an ORM flush
    # of several objects) passes one flat row of all their values, with executemany set.
    if executemany and parameters and isinstance(parameters[0], dict | list | tuple):
        return statement, [_without_nul(row) for row in parameters]
    return statement, _without_nul(parameters)


class Database:
    """An engine and a session factory; transactions are short and never span an await
    on anything but the database."""

    def __init__(self, url: str) -> None:
        self.url = normalize_database_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # One connection serialises writers inside the process: SQLite has a single
            # writer anyway, and this avoids "database is locked" upgrade deadlocks.
            options.update(pool_size=1, max_overflow=0, pool_timeout=60)
        self.engine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        else:
            event.listen(
                self.engine.sync_engine, "before_cursor_execute", _postgresql_no_nul, retval=True
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader = self.engine
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            # WAL lets readers run beside the writer: hot-path lookups (keys, budgets)
            # do not queue behind a write transaction on the single writer connection.
            self._reader = create_async_engine(self.url, pool_size=4, max_overflow=4)
            event.listen(self._reader.sync_engine, "connect", _sqlite_connect_reader)
        self._read_sessions = async_sessionmaker(self._reader, expire_on_commit=False)

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncSession]:
        """A session for lookups only; on SQLite it never waits for a writer."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction that commits on success, rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def startup_lock(self, name: str) -> AsyncIterator[None]:
        """Take turns with the other processes starting on this database (``--workers``,
        replicas) for start-up work that reads then writes: the admin account, demo data,
        the generated secret. Without it two processes may both find no admin and both
        insert one, and the loser fails to start.

        PostgreSQL: a session advisory lock named after ``name``. SQLite: nothing to do,
        each transaction holds the database's write lock from its start.
        """
        if self.is_sqlite:
            yield
            return
        key = zlib.crc32(name.encode())
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    async def ping(self) -> None:
        """One round trip to the database; raises when it is unreachable."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    @property
    def display_url(self) -> str:
        """The URL without its password, for log lines."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._reader is not self.engine:
            await self._reader.dispose()
