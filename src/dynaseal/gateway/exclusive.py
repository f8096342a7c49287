"""One gateway process per SQLite file when budgets live in memory.

Budgets kept in a process's memory are only exact if no other process spends from the
same keys. With SQLite (a file on one machine) that is enforced with a lock file next to
the database; a second gateway on the same file refuses to start and says what to do.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from dynaseal.core.settings import ConfigError


class ExclusiveUse:
    def __init__(self, database_url: str) -> None:
        database = make_url(database_url).database
        self._database = database
        self._path = (
            Path(f"{database}.gateway.lock") if database not in (None, "", ":memory:") else None
        )
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._path is None:
            return  # an in-memory database is private to this process anyway
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another gateway process is using the SQLite database {self._database!r}. "
                "One process keeps budgets in memory; to run several, set "
                "BUDGET_STORE=database (SQLite), or use PostgreSQL and REDIS_URL"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
