"""The reference backend's tables: end users, the keys minted for them, callbacks received,
console logins."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dynaseal.storage.console_sessions import ConsoleSessionColumns
from dynaseal.storage.types import (
    NAMING_CONVENTION,
    TYPE_ANNOTATION_MAP,
    Money,
    ServerSecretColumns,
    UTCDateTime,
    utcnow,
)


class BackendBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = TYPE_ANNOTATION_MAP


class User(BackendBase):
    """An end user of the business; the per-user policy overrides the backend defaults."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(256), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    is_admin: Mapped[bool] = mapped_column(default=False)
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    #: A key's ``max_tokens`` (generated tokens); ``None``: the backend default.
    key_budget_tokens: Mapped[int | None]
    #: A key's ``max_total_tokens`` and ``max_cost`` (USD); ``None``: the backend default.
    key_total_tokens: Mapped[int | None]
    key_max_cost: Mapped[Decimal | None] = mapped_column(Money)
    key_lifetime_seconds: Mapped[int | None]
    #: Generated tokens per UTC day; ``None`` takes the backend default, 0 means unlimited.
    daily_token_quota: Mapped[int | None]
    #: USD per UTC day; ``None`` takes the backend default, 0 means unlimited.
    daily_cost_quota: Mapped[Decimal | None] = mapped_column(Money)
    #: Only device-bound keys for this user; ``None`` takes the backend default.
    require_bound_keys: Mapped[bool | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IssuedKey(BackendBase):
    """A dynamic key minted for a user, so callbacks can be tied back to that user."""

    __tablename__ = "issued_keys"

    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    models: Mapped[list[str]] = mapped_column(JSON)
    max_tokens: Mapped[int]
    max_total_tokens: Mapped[int | None]
    max_cost: Mapped[Decimal | None] = mapped_column(Money)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageCallback(BackendBase):
    """A usage callback received from the gateway, stored once per delivery id."""

    __tablename__ = "usage_callbacks"
    __table_args__ = (Index("ix_usage_user_day", "user_id", "occurred_at"),)

    delivery_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(256), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    tokens: Mapped[int]  # prompt + generated
    #: Generated tokens: what the daily token quota counts (all ``tokens`` when a
    #: callback does not say).
    completion_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    cost: Mapped[Decimal | None] = mapped_column(Money)  # USD; None: the model had no price
    content: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature_verified: Mapped[bool] = mapped_column(default=False)
    #: When the request ended (the gateway's ``ended_at``): the day a quota counts it on,
    #: even when the callback arrives days later.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsoleSession(ConsoleSessionColumns, BackendBase):
    """An end user logged in to the backend's console page."""

    __tablename__ = "user_console_sessions"


class BackendSecret(ServerSecretColumns, BackendBase):
    """The generated SECRET_KEY when none is configured (signs end users' logins)."""

    __tablename__ = "backend_secrets"
