"""Column helpers shared by both services' tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from dynaseal.core.money import to_units, to_usd

#: Named constraints: Alembic can only drop or alter (on SQLite: batch-copy) what has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Every ``int`` column is 64-bit: token counters outgrow PostgreSQL's 32-bit INTEGER.
#: SQLite's INTEGER already is, and only INTEGER PRIMARY KEY autoincrements there.
TYPE_ANNOTATION_MAP: dict[Any, Any] = {int: BigInteger().with_variant(Integer(), "sqlite")}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Money(TypeDecorator[Decimal]):
    """USD amounts, exact: stored as integers of 1e-10 USD (:mod:`dynaseal.core.money`),
    so sums are exact on every database; :class:`~decimal.Decimal` in Python."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: object) -> int | None:
        return None if value is None else to_units(value)

    def process_result_value(self, value: Any, dialect: object) -> Decimal | None:
        # A SUM comes back as NUMERIC from PostgreSQL: still a whole number of units.
        return None if value is None else to_usd(int(value))


class ServerSecretColumns:
    """Mixin of each service's ``*_secrets`` table: secrets the service generated itself
    (see :mod:`dynaseal.core.server_secret`), one row per name."""

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
