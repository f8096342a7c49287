"""Access and refresh tokens for people logging in to the gateway or the backend.

Each token says what it is (``typ``) and which service it is for (``aud``), so an
access token is never accepted as a refresh token, nor the other way round, and a
gateway login never works on the backend.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt

from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.settings import ServiceSettings

TokenKind = Literal["access", "refresh"]


class InvalidSessionToken(Exception):
    """The bearer token is not a valid token of the expected kind."""


@dataclass(frozen=True, slots=True)
class SessionTokens:
    secret: ServerSecret
    algorithm: str
    audience: str
    access_ttl_seconds: int
    refresh_ttl_seconds: int

    @classmethod
    def for_service(
        cls, settings: ServiceSettings, audience: str, secret: ServerSecret
    ) -> SessionTokens:
        """The login tokens of one service, from the settings both services share."""
        return cls(
            secret=secret,
            algorithm=settings.algorithm,
            audience=audience,
            access_ttl_seconds=settings.access_token_expire_minutes * 60,
            refresh_ttl_seconds=settings.refresh_token_expire_minutes * 60,
        )

    def issue(self, subject: str, kind: TokenKind) -> str:
        now = int(time.time())
        ttl = self.access_ttl_seconds if kind == "access" else self.refresh_ttl_seconds
        claims = {
            "sub": subject,
            "typ": kind,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.secret.value, algorithm=self.algorithm)

    def issue_pair(self, subject: str) -> dict[str, str]:
        return {
            "access_token": self.issue(subject, "access"),
            "refresh_token": self.issue(subject, "refresh"),
            "token_type": "bearer",
        }

    def subject(self, token: str, kind: TokenKind) -> str:
        """Return the subject of a valid token of ``kind``, or raise."""
        try:
            claims = jwt.decode(
                token,
                self.secret.value,
                algorithms=[self.algorithm],
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "aud"]},
            )
        except (jwt.InvalidTokenError, UnicodeError) as exc:
            # UnicodeError: a JSON string may hold a lone surrogate, which has no UTF-8.
            raise InvalidSessionToken(str(exc)) from exc
        if claims.get("typ") != kind:
            raise InvalidSessionToken(f"not an {kind} token")
        return str(claims["sub"])
