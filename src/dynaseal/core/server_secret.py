"""The secret a service signs its login tokens with (the gateway also derives the key that
seals tenant secrets from it): ``SECRET_KEY`` when set, otherwise a random one generated
at the first start and kept in the service's own database.

Why the database and not a file in the data directory: every process that shares the
data must share the secret — ``--workers`` processes, and replicas on other machines that
share one PostgreSQL database — and the database is the one thing they all have. Several
processes may start at once: each inserts a candidate if none is stored, and all of them
then use whichever row won. Production mode still wants ``SECRET_KEY`` set, so that a
dump of the database alone does not hold the key to the secrets sealed in it.
"""

from __future__ import annotations

import logging
import secrets

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from dynaseal.storage import Database
from dynaseal.storage.types import ServerSecretColumns

log = logging.getLogger("dynaseal")

#: The row of the service's ``*_secrets`` table holding the generated SECRET_KEY.
SECRET_KEY_ROW = "secret_key"


class ServerSecret:
    """The service's secret, known once :meth:`load` ran at start-up.

    Built before the database is reachable (objects that sign or seal hold this, not the
    value), filled in by the application's start-up.
    """

    def __init__(self, configured: SecretStr | None) -> None:
        self._value = configured.get_secret_value() if configured is not None else None

    @property
    def value(self) -> str:
        if self._value is None:
            raise RuntimeError("the server secret was used before start-up loaded it")
        return self._value

    async def load(self, db: Database, table: type[ServerSecretColumns]) -> None:
        """Use SECRET_KEY if configured; else the stored secret, generating it first."""
        if self._value is None:
            self._value = await _stored_secret(db, table)


async def _stored_secret(db: Database, table: type[ServerSecretColumns]) -> str:
    async with db.sessions() as session:
        stored = await session.get(table, SECRET_KEY_ROW)
    if stored is not None:
        return stored.value
    try:
        async with db.transaction() as session:
            # The mixin's columns are mapped on each service's own table class.
            row = table(name=SECRET_KEY_ROW, value=secrets.token_urlsafe(48))  # type: ignore[call-arg]
            session.add(row)
    except IntegrityError:
        pass  # another process stored its candidate first: everyone uses that one
    else:
        log.warning(
            "SECRET_KEY is not set: generated a random secret and stored it in the database "
            "(%s); set SECRET_KEY to keep it outside the database",
            db.display_url,
        )
    async with db.sessions() as session:
        stored = await session.get(table, SECRET_KEY_ROW)
    assert stored is not None
    return stored.value
