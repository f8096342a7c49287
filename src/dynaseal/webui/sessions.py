"""Console logins: a random token in an ``HttpOnly``, ``SameSite=Strict`` cookie (and
``Secure`` over https), its SHA-256 in the service's ``ConsoleSession`` table.

Server-side rows rather than a signed cookie so that logging out really ends the
session, on every replica. Each form carries a CSRF token derived from the session
token with the service's SECRET_KEY (nothing more to store); the login form, before any
session exists, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from starlette.requests import Request
from starlette.responses import Response

from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.settings import ServiceSettings
from dynaseal.storage import Database
from dynaseal.storage.console_sessions import ConsoleSessionColumns
from dynaseal.storage.types import utcnow

#: Longest cookie value accepted (ours are 43 characters).
_MAX_TOKEN = 128
#: Form field (and htmx header) carrying the CSRF token.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Login:
    """The logged-in browser of a request."""

    subject: str  # tenant id (gateway) or user id (backend)
    token: str
    csrf: str


@dataclass(frozen=True)
class SessionStore:
    model: type[ConsoleSessionColumns]
    secret: ServerSecret  # known once the service's start-up loaded it
    cookie: str  # distinct per service: browsers share cookies across ports
    ttl: timedelta

    @classmethod
    def for_service(
        cls,
        model: type[ConsoleSessionColumns],
        settings: ServiceSettings,
        secret: ServerSecret,
        cookie: str,
    ) -> SessionStore:
        """The console logins of one service, from the settings both services share."""
        return cls(
            model,
            secret=secret,
            cookie=cookie,
            ttl=timedelta(minutes=settings.console_session_minutes),
        )

    @property
    def login_cookie(self) -> str:
        """The double-submit cookie of the login form."""
        return f"{self.cookie}_login"

    async def open(self, db: Database, subject: str) -> str:
        """A new session for ``subject`` (a fresh token: no fixation); returns the token.
        Expired sessions are swept at the same time."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        model = self.model
        async with db.transaction() as session:
            await session.execute(delete(model).where(model.expires_at <= now))
            session.add(model(id=_digest(token), subject=subject, expires_at=now + self.ttl))  # type: ignore[call-arg]
        return token

    async def find(self, db: Database, token: str | None) -> Login | None:
        """The login a cookie stands for, if the session is still open."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        async with db.sessions() as session:
            row = await session.get(self.model, _digest(token))
        if row is None or row.expires_at <= utcnow():
            return None
        return Login(row.subject, token, self.csrf(token))

    async def close(self, db: Database, token: str) -> None:
        async with db.transaction() as session:
            await session.execute(delete(self.model).where(self.model.id == _digest(token)))

    def csrf(self, token: str) -> str:
        return hmac.new(
            self.secret.value.encode(), b"console-csrf:" + token.encode(), "sha256"
        ).hexdigest()

    def set_cookie(self, response: Response, request: Request, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(self.ttl.total_seconds()),
            path=request.scope.get("root_path") or "/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(
            name,
            path=request.scope.get("root_path") or "/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )


def same_token(given: object, expected: str) -> bool:
    """Constant-time comparison of a submitted token with the expected one."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
