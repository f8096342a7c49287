"""Database reads and writes of the backend, kept out of the route functions."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import BigInteger, case, cast, func, or_, select, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.backend.schemas import UsagePayload, UserCreate
from dynaseal.core.errors import APIError
from dynaseal.core.passwords import hash_password, verify_password
from dynaseal.keys import MintedKey
from dynaseal.storage import Database
from dynaseal.storage.backend_models import IssuedKey, UsageCallback, User

ADMIN_USERNAME = "admin"


def new_user_id() -> str:
    """24 hex digits, the shape of the original's MongoDB ids."""
    return secrets.token_hex(12)


async def users_by_login(session: AsyncSession, login: str) -> Sequence[User]:
    """The login form's ``username`` field may hold the username or the email.

    Usernames and emails are one namespace (see :func:`create_user`), but a database
    from before that rule may hold a username equal to another user's email: then both
    users are returned, the username's first, and the password decides.
    """
    found = await session.scalars(
        select(User)
        .where(or_(User.username == login, User.email == login))
        .order_by((User.username == login).desc(), User.id)
        .limit(2)
    )
    return found.all()


async def create_user(session: AsyncSession, data: UserCreate, password_hash: str) -> User:
    """Refuse (409) a username or email that is any user's username or email."""
    names = [data.username] if data.email is None else [data.username, data.email]
    taken = await session.scalar(
        select(User.id).where(or_(User.username.in_(names), User.email.in_(names))).limit(1)
    )
    if taken is not None:
        raise _user_exists()
    user = User(
        id=new_user_id(),
        username=data.username,
        email=data.email,
        password_hash=password_hash,
        is_admin=data.is_admin,
        allowed_models=data.allowed_models,
        key_budget_tokens=data.key_budget_tokens,
        key_total_tokens=data.key_total_tokens,
        key_max_cost=data.key_max_cost,
        key_lifetime_seconds=data.key_lifetime_seconds,
        daily_token_quota=data.daily_token_quota,
        daily_cost_quota=data.daily_cost_quota,
        require_bound_keys=data.require_bound_keys,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent creation took the name first
        raise _user_exists() from None
    return user


def _user_exists() -> APIError:
    return APIError(
        409, "A user with this username or email exists.", code="user_exists", param="username"
    )


async def ensure_admin(db: Database, password: str) -> None:
    """Create the ``admin`` user, or give it the configured password if that changed."""
    async with db.transaction() as session:
        admin = await session.scalar(select(User).where(User.username == ADMIN_USERNAME))
        if admin is None:
            session.add(
                User(
                    id=new_user_id(),
                    username=ADMIN_USERNAME,
                    password_hash=hash_password(password),
                    is_admin=True,
                )
            )
        elif not verify_password(password, admin.password_hash) or not admin.is_admin:
            admin.password_hash = hash_password(password)
            admin.is_admin = True


def record_issued_key(session: AsyncSession, minted: MintedKey, user_id: str) -> None:
    session.add(
        IssuedKey(
            event_id=minted.event_id,
            user_id=user_id,
            models=list(minted.models),
            max_tokens=minted.max_tokens,
            max_total_tokens=minted.max_total_tokens,
            max_cost=minted.max_cost,
            expires_at=datetime.fromtimestamp(minted.expires_at, UTC),
        )
    )


async def store_callbacks(
    db: Database, events: Sequence[tuple[str, UsagePayload]], *, signature_verified: bool
) -> int:
    """Store each ``(delivery id, payload)`` not stored before, in one transaction;
    returns how many were new. A delivery id seen before (a retried delivery, an event
    re-sent alone after its batch) is skipped, never counted twice."""
    try:
        async with db.transaction() as session:
            return await _store(session, events, signature_verified)
    except IntegrityError:  # a concurrent delivery stored some of them first: one by one
        stored = 0
        for event in events:
            try:
                async with db.transaction() as session:
                    stored += await _store(session, [event], signature_verified)
            except IntegrityError:
                pass
        return stored


async def _store(
    session: AsyncSession, events: Sequence[tuple[str, UsagePayload]], signature_verified: bool
) -> int:
    ids = {delivery_id for delivery_id, _ in events}
    seen = set(
        await session.scalars(
            select(UsageCallback.delivery_id).where(UsageCallback.delivery_id.in_(ids))
        )
    )
    keys = {payload.event_id for _, payload in events}
    owners = {
        event_id: user_id
        for event_id, user_id in await session.execute(
            select(IssuedKey.event_id, IssuedKey.user_id).where(IssuedKey.event_id.in_(keys))
        )
    }
    stored = 0
    for delivery_id, payload in events:
        if delivery_id in seen:
            continue
        seen.add(delivery_id)
        owner = owners.get(payload.event_id)
        session.add(_usage_row(delivery_id, payload, owner, signature_verified))
        stored += 1
    return stored


def _usage_row(
    delivery_id: str, payload: UsagePayload, user_id: str | None, signature_verified: bool
) -> UsageCallback:
    return UsageCallback(
        delivery_id=delivery_id,
        event_id=payload.event_id,
        user_id=user_id,
        tokens=payload.tokens,
        # A callback that does not say counts all its tokens as generated.
        completion_tokens=min(
            payload.tokens,
            payload.tokens if payload.completion_tokens is None else payload.completion_tokens,
        ),
        cost=payload.cost,
        content=payload.content,
        payload=payload.model_dump(mode="json"),
        occurred_at=payload.ended_at or datetime.now(UTC),
        signature_verified=signature_verified,
    )


#: What the daily quotas count of a callback, and the budget of a key that bounds it.
Measure = Literal["tokens", "cost"]
_USED = {"tokens": UsageCallback.completion_tokens, "cost": UsageCallback.cost}
_BUDGET = {"tokens": IssuedKey.max_tokens, "cost": IssuedKey.max_cost}


def _raw(column: Any) -> Any:
    """The column as the database holds it (money in integer units): sums and
    differences stay exact integers; the total is read back with :func:`_total`."""
    return type_coerce(column, BigInteger)


def _total(expression: Any, column: Any) -> Any:
    """A sum of raw values, read back as the column's type (PostgreSQL sums BIGINTs as
    NUMERIC: cast back, so tokens come back as ints)."""
    return type_coerce(cast(func.coalesce(expression, 0), BigInteger), column.type)


async def used_since(session: AsyncSession, user_id: str, since: datetime, what: Measure) -> Any:
    """Generated tokens (an int) or USD (a Decimal) the user's requests used since then."""
    column = _USED[what]
    total = _total(func.sum(_raw(column)), column)
    return await session.scalar(
        select(total).where(UsageCallback.user_id == user_id, UsageCallback.occurred_at >= since)
    )


async def lock_user(session: AsyncSession, user_id: str) -> None:
    """Serialise the rest of the transaction with the user's other mints (SQLite
    transactions already hold the database's write lock)."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def reserved_by_keys(
    session: AsyncSession, user_id: str, expired_after: datetime, what: Measure
) -> tuple[Any, datetime | None]:
    """What the user's keys that expire after ``expired_after`` have not spent yet of
    their budgets (by the callbacks received so far), and the earliest expiry among
    those keys. Keys without such a budget hold nothing."""
    budget = _BUDGET[what]
    spent = (
        select(func.coalesce(func.sum(_raw(_USED[what])), 0))
        .where(UsageCallback.event_id == IssuedKey.event_id)
        .correlate(IssuedKey)
        .scalar_subquery()
    )
    unspent = _raw(budget) - spent
    held = func.sum(case((unspent > 0, unspent), else_=0))
    total, earliest = (
        await session.execute(
            select(
                _total(held, budget),
                func.min(case((unspent > 0, IssuedKey.expires_at))),
            ).where(IssuedKey.user_id == user_id, IssuedKey.expires_at > expired_after)
        )
    ).one()
    return total, earliest


async def keys_issued_since(
    session: AsyncSession, user_id: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many keys the user got since ``since``, and when the first of them was minted."""
    count, first = (
        await session.execute(
            select(func.count(), func.min(IssuedKey.created_at)).where(
                IssuedKey.user_id == user_id, IssuedKey.created_at > since
            )
        )
    ).one()
    return int(count), first


async def list_usage(
    session: AsyncSession, *, user_id: str | None, event_id: str | None, limit: int
) -> tuple[Sequence[UsageCallback], int, Decimal]:
    """Callbacks newest first and the total tokens and cost of all that match; ``user_id=None``
    means every user's."""
    conditions = []
    if user_id is not None:
        conditions.append(UsageCallback.user_id == user_id)
    if event_id is not None:
        conditions.append(UsageCallback.event_id == event_id)
    rows = await session.scalars(
        select(UsageCallback)
        .where(*conditions)
        .order_by(UsageCallback.received_at.desc())
        .limit(limit)
    )
    tokens, cost = (
        await session.execute(
            select(
                func.coalesce(func.sum(UsageCallback.tokens), 0),
                func.coalesce(func.sum(UsageCallback.cost), Decimal(0)),
            ).where(*conditions)
        )
    ).one()
    return rows.all(), int(tokens or 0), cost or Decimal(0)
