"""Logging end users in and managing their accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool

from dynaseal.backend import crud
from dynaseal.backend.deps import (
    AdminUser,
    CurrentUser,
    DatabaseDep,
    SettingsDep,
    ThrottleDep,
    TokensDep,
)
from dynaseal.backend.policy import policy_for
from dynaseal.backend.schemas import PolicyView, RefreshRequest, UserCreate, UserView
from dynaseal.backend.settings import BackendSettings
from dynaseal.core.errors import unauthorized
from dynaseal.core.passwords import hash_password, verify_password
from dynaseal.core.session_tokens import InvalidSessionToken
from dynaseal.storage.backend_models import User

router = APIRouter(prefix="/user", tags=["users"])


def user_view(user: User, settings: BackendSettings) -> UserView:
    policy = policy_for(user, settings)
    return UserView(
        id=user.id,
        username=user.username,
        email=user.email,
        is_admin=user.is_admin,
        policy=PolicyView(
            models=list(policy.models),
            key_budget_tokens=policy.key_budget_tokens,
            key_total_tokens=policy.key_total_tokens,
            key_max_cost=policy.key_max_cost,
            key_lifetime_seconds=policy.key_lifetime_seconds,
            daily_token_quota=policy.daily_token_quota or None,
            daily_cost_quota=policy.daily_cost_quota or None,
            require_bound_keys=policy.require_bound_keys,
        ),
    )


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=256)],
    db: DatabaseDep,
    tokens: TokensDep,
    throttle: ThrottleDep,
) -> dict[str, str]:
    """OAuth2 password form; ``username`` may also be the email."""

    async def authenticate() -> User | None:
        async with db.transaction() as session:
            candidates = await crud.users_by_login(session, username)
        # An unknown user still costs one bcrypt check, so timing does not reveal accounts.
        tried: list[User | None] = [*candidates] or [None]
        for user in tried:
            hashed = user.password_hash if user else None
            if await run_in_threadpool(verify_password, password, hashed):
                return user
        return None

    user = await throttle.login(request, username, authenticate)
    return tokens.issue_pair(user.id)


@router.post("/refresh")
async def refresh(body: RefreshRequest, db: DatabaseDep, tokens: TokensDep) -> dict[str, str]:
    try:
        user_id = tokens.subject(body.refresh_token, "refresh")
    except InvalidSessionToken:
        raise unauthorized("Invalid or expired refresh token.") from None
    async with db.transaction() as session:
        if await session.get(User, user_id) is None:
            raise unauthorized("Invalid or expired refresh token.")
    return tokens.issue_pair(user_id)


@router.get("/me")
async def me(user: CurrentUser, settings: SettingsDep) -> UserView:
    return user_view(user, settings)


@router.post("/create", status_code=201)
async def create(
    body: UserCreate, _: AdminUser, db: DatabaseDep, settings: SettingsDep
) -> UserView:
    password_hash = await run_in_threadpool(hash_password, body.password)
    async with db.transaction() as session:
        user = await crud.create_user(session, body, password_hash)
    return user_view(user, settings)
