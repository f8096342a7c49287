"""Request dependencies: the app's shared objects and the authenticated user."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dynaseal.backend.settings import BackendSettings
from dynaseal.backend.webhooks import CallbackVerifier
from dynaseal.core.errors import APIError, unauthorized
from dynaseal.core.login_throttle import LoginThrottle
from dynaseal.core.session_tokens import InvalidSessionToken, SessionTokens
from dynaseal.storage import Database
from dynaseal.storage.backend_models import User

_bearer = HTTPBearer(auto_error=False)


def get_settings(request: Request) -> BackendSettings:
    return cast(BackendSettings, request.app.state.settings)


def get_db(request: Request) -> Database:
    return cast(Database, request.app.state.db)


def get_tokens(request: Request) -> SessionTokens:
    return cast(SessionTokens, request.app.state.tokens)


def get_throttle(request: Request) -> LoginThrottle:
    return cast(LoginThrottle, request.app.state.login_throttle)


def get_verifier(request: Request) -> CallbackVerifier:
    return cast(CallbackVerifier, request.app.state.callback_verifier)


SettingsDep = Annotated[BackendSettings, Depends(get_settings)]
VerifierDep = Annotated[CallbackVerifier, Depends(get_verifier)]
DatabaseDep = Annotated[Database, Depends(get_db)]
TokensDep = Annotated[SessionTokens, Depends(get_tokens)]
ThrottleDep = Annotated[LoginThrottle, Depends(get_throttle)]


async def current_user(
    db: DatabaseDep,
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user of a valid *access* token; refresh tokens are refused here."""
    if credentials is None:
        raise unauthorized("Missing bearer access token.")
    try:
        user_id = tokens.subject(credentials.credentials, "access")
    except InvalidSessionToken:
        raise unauthorized() from None
    async with db.transaction() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise unauthorized()
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise APIError(403, "Only an admin may do this.", code="admin_required")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
